//! What `ps` shows as a process's command line.
//!
//! A worker forked from the template inherits the template's arguments
//! (`rwsgi-worker --template ...`), so `ps aux` would show every worker as
//! a template; `--process-name` and `--process-group` name the master and
//! the workers as mod_wsgi-express does. The kernel reads `/proc/PID/cmdline` from the process's own
//! memory, between the addresses it lists in `/proc/PID/stat`, so the
//! worker writes its own line there, as PostgreSQL and setproctitle do.

/// The argument area, from `/proc/self/stat` (fields 48 and 49).
fn argument_area(stat: &str) -> Option<(usize, usize)> {
    // The command name (field 2) may hold spaces and parentheses: the
    // fields proper start after its last ')'. Field 3 is then index 0.
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace().skip(45);
    let start = fields.next()?.parse().ok()?;
    let end = fields.next()?.parse().ok()?;
    (end > start).then_some((start, end))
}

/// Replaces the command line `ps` shows with `title` (NUL separates
/// arguments), cut to the space the original arguments took. Best effort:
/// nothing happens if the area is not found. Call it only once nothing
/// reads the arguments any more: `std::env::args` reads this memory.
pub fn set(title: &str) {
    let Some((start, end)) = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .as_deref()
        .and_then(argument_area)
    else {
        return;
    };
    let room = end - start;
    let n = title.len().min(room - 1);
    // SAFETY: [start, end) is this process's argument area, as the kernel
    // reports it: memory on the main thread's stack, mapped and writable,
    // which nothing in this program reads after start-up (std and Python
    // copied the arguments when they parsed them). Only that range is
    // written, and it stays NUL-terminated.
    unsafe {
        let area = start as *mut u8;
        std::ptr::copy_nonoverlapping(title.as_ptr(), area, n);
        std::ptr::write_bytes(area.add(n), 0, room - n);
    }
}

/// `--process-name NAME`: the master's command line with NAME as its
/// program, as mod_wsgi-express execs Apache (`NAME -f httpd.conf ...`).
pub fn renamed(name: &str, args: &[String]) -> String {
    std::iter::once(name)
        .chain(args.iter().skip(1).map(String::as_str))
        .collect::<Vec<_>>()
        .join("\0")
}

/// `--process-group NAME`: a worker's title, mod_wsgi's daemon display name.
pub fn daemon_title(group: &str) -> String {
    format!("(wsgi:{group})")
}

#[cfg(test)]
mod tests {
    use super::{argument_area, daemon_title, renamed};

    #[test]
    fn the_name_replaces_the_program_and_keeps_the_arguments() {
        let args = ["/usr/bin/rwsgi", "start-server", "wsgi.py"].map(String::from);
        assert_eq!(renamed("myapp", &args), "myapp\0start-server\0wsgi.py");
        assert_eq!(renamed("myapp", &[]), "myapp");
        assert_eq!(daemon_title("site"), "(wsgi:site)");
    }

    #[test]
    fn the_area_is_found_after_a_command_name_with_spaces_and_parentheses() {
        let tail: Vec<String> = (3..=52).map(|i| i.to_string()).collect();
        let stat = format!("1234 (a) (b c) {}", tail.join(" "));
        assert_eq!(argument_area(&stat), Some((48, 49)));
        assert_eq!(argument_area("1234 (x) S 1 2"), None);
    }
}
