//! The start-up summary an operator reads first.

use rwsgi_shared::config::ServerConfig;

/// Lines describing what the server is about to do.
pub fn summary(c: &ServerConfig) -> Vec<String> {
    let host = if c.host.is_empty() {
        "0.0.0.0"
    } else {
        &c.host
    };
    let t = &c.timeouts;
    let mut lines = vec![
        if c.app.entry_point.is_empty() && c.app.kind == rwsgi_shared::config::AppType::Script {
            "application: none given, serving the default page (as mod_wsgi-express)".to_owned()
        } else {
            format!(
                "application: {} {} (callable {})",
                c.app.kind.as_str(),
                c.app.entry_point,
                c.app.callable
            )
        },
        if c.port == 0 {
            format!("address: {host}, a port the kernel chooses (logged once bound)")
        } else {
            format!("address: http://{host}:{}/{}", c.port, c.mount_point.trim_start_matches('/'))
        },
        format!(
            "{} process{} x {} thread{} = {} concurrent requests",
            c.processes,
            if c.processes == 1 { "" } else { "es" },
            c.threads,
            if c.threads == 1 { "" } else { "s" },
            c.capacity()
        ),
        preload_line(c.preload).to_owned(),
        format!(
            "timeouts: request {}, interrupt {}, deadlock {}, startup {}, graceful {}s, shutdown {}s, queue {}, keep-alive {}, header {}, socket {}s",
            dur(t.request_ms), if t.interrupt_ms == 0 { "off".to_owned() } else { format!("{}s", secs(t.interrupt_ms)) }, dur(t.deadlock_ms), dur(t.startup_ms), secs(t.graceful_ms), secs(t.shutdown_ms),
            dur(t.queue_ms), if c.limits.keep_alive { dur(t.keep_alive_ms) } else { "off".to_owned() }, dur(t.header_ms), secs(t.socket_ms)
        ),
        format!(
            "request bodies: up to {}, received before the application within {}, one more second per {} bytes, {}{}",
            if c.limits.request_body == u64::MAX { "any size".to_owned() } else { format!("{} bytes", c.limits.request_body) }, dur(t.body_ms), t.body_min_rate,
            if t.body_max_ms == 0 { "no cap".to_owned() } else { format!("at most {}s", secs(t.body_max_ms)) },
            if c.chunked_request { " (chunked ones streamed: --chunked-request)" } else { "" }
        ),
        container_line(),
        format!("working directory: {}", c.python.working_directory.display()),
        format!("static files: {}", static_mounts(&c.statics)),
    ];
    if c.guard.enabled() {
        lines.push(guard_line(&c.guard));
    }
    if !c.application_group.is_empty() {
        lines.push(format!(
            "application group: {} (the workers' main interpreter: rwsgi has no sub-interpreters, and each worker process holds only this application)",
            c.application_group
        ));
    }
    if !c.statics.error_documents.is_empty() || c.statics.error_override {
        lines.push(error_pages_line(&c.statics));
    }
    if c.slow_request_ms > 0 {
        lines.push(format!(
            "slow requests: logged with their Python stack after {}s (--slow-requests)",
            secs(c.slow_request_ms)
        ));
    }
    if let Some(t) = &c.telemetry {
        lines.push(format!(
            "telemetry: each worker sends mod_wsgi's datagrams to unix:{} every {}s{} (--telemetry-service)",
            t.socket.display(),
            secs(t.interval_ms),
            if t.capture_user_agent { ", slow requests with their User-Agent" } else { "" }
        ));
    }
    if c.server_metrics {
        lines.push(
            "server metrics: mod_wsgi.server_metrics() returns the scoreboard (--server-metrics)"
                .to_owned(),
        );
    }
    if c.enable_docs {
        lines.push("documentation: rwsgi's, at /__wsgi__/docs/ (--enable-docs)".to_owned());
    }
    if let Some(debug) = &c.debug {
        lines.extend(crate::debug::summary(debug));
    }
    if let Some(line) = proxy_line(&c.proxy_pass) {
        lines.push(line);
    }
    if let Some(files) = &c.log_files {
        lines.push(log_files_line(files));
    }
    for s in &c.services {
        lines.push(format!(
            "service {}: {}{}{}",
            s.name,
            s.script.display(),
            s.run_as
                .as_ref()
                .map(|r| format!(", as {} (uid {}, gid {})", r.user, r.uid, r.gid))
                .unwrap_or_default(),
            s.log_file
                .as_ref()
                .map(|f| format!(", output to {}", f.display()))
                .unwrap_or_default()
        ));
    }
    lines
}

/// `--error-document`, `--error-override`: which error pages are replaced.
fn error_pages_line(s: &rwsgi_shared::config::StaticConfig) -> String {
    use rwsgi_shared::config::Document;
    let mut parts: Vec<String> = s
        .error_documents
        .iter()
        .map(|d| match &d.document {
            Document::Local(path) => format!("{} -> {path}", d.status),
            Document::Redirect(url) => format!("{} -> 302 to {url}", d.status),
            Document::Text(_) => format!("{} -> text", d.status),
        })
        .collect();
    if s.error_override {
        parts.push("the application's 4xx and 5xx replaced too (--error-override)".to_owned());
    }
    format!("error pages: {}", parts.join(", "))
}

/// `--proxy-mount-point`, `--proxy-virtual-host`: `proxied: /api -> URL,
/// host side.example.org -> URL (timeout 60s)`.
fn proxy_line(p: &rwsgi_shared::config::ProxyPassConfig) -> Option<String> {
    let routes: Vec<String> = p
        .mounts
        .iter()
        .map(|(path, url)| format!("{path} -> {url}"))
        .chain(
            p.virtual_hosts
                .iter()
                .map(|(host, url)| format!("host {host} -> {url}")),
        )
        .collect();
    (!routes.is_empty()).then(|| {
        format!(
            "proxied: {} (--proxy-timeout {}s)",
            routes.join(", "),
            secs(p.timeout_ms)
        )
    })
}

/// `--auth-user-script`, `--host-access-script`: what guards the site.
fn guard_line(g: &rwsgi_shared::config::GuardConfig) -> String {
    let mut parts = Vec::new();
    if let Some(a) = &g.auth {
        parts.push(format!(
            "{} authentication by {} (realm {:?}){}",
            a.scheme.as_str(),
            a.user_script.display(),
            a.realm,
            match &a.group_script {
                Some(s) => format!(", group {:?} by {}", a.group, s.display()),
                None => String::new(),
            }
        ));
    }
    if let Some(s) = &g.host_access_script {
        parts.push(format!("host access by {}", s.display()));
    }
    format!(
        "guarding every request, static files too: {}",
        parts.join("; ")
    )
}

/// How workers come to be (`--preload`).
fn preload_line(p: rwsgi_shared::config::Preload) -> &'static str {
    use rwsgi_shared::config::Preload;
    match p {
        Preload::Interpreter => "workers: forked from a template that started Python (--preload interpreter); each imports the application",
        Preload::Application => "workers: forked from a template that imported the application (--preload application)",
        Preload::None => "workers: each starts Python and imports the application (--preload none)",
    }
}

/// `/static -> /srv/htdocs, / -> /srv/root (document root)`, or `none`.
fn static_mounts(s: &rwsgi_shared::config::StaticConfig) -> String {
    let mut mounts: Vec<String> = s
        .aliases
        .iter()
        .map(|a| {
            let missing = if a.path.exists() { "" } else { " (missing)" };
            let slash = if a.path.is_file() { "" } else { "/" };
            format!("{}{slash} -> {}{missing}", a.url, a.path.display())
        })
        .collect();
    if let Some(root) = &s.document_root {
        let what = if s.only_static {
            "static only"
        } else {
            "document root"
        };
        mounts.push(format!("/ -> {} ({what})", root.display()));
    }
    if mounts.is_empty() {
        "none".to_owned()
    } else if s.directory_listing {
        format!(
            "{} (directories without an index listed)",
            mounts.join(", ")
        )
    } else {
        mounts.join(", ")
    }
}

/// A timeout that 0 turned off (`crate::resolve::NO_TIMEOUT_MS`) reads "off".
fn dur(ms: u64) -> String {
    if ms >= crate::resolve::NO_TIMEOUT_MS {
        "off".to_owned()
    } else {
        format!("{}s", secs(ms))
    }
}

fn secs(ms: u64) -> String {
    if ms.is_multiple_of(1000) {
        (ms / 1000).to_string()
    } else {
        format!("{:.3}", ms as f64 / 1000.0)
    }
}

/// The cgroup's CPU quota and memory limit, and the CPUs we may run on.
fn container_line() -> String {
    let l = crate::container::limits();
    let cpus = l.cpus.map_or_else(
        || "no CPU quota".to_owned(),
        |c| format!("CPU quota {c:.2}"),
    );
    let memory = l.memory.map_or_else(
        || "no memory limit".to_owned(),
        |m| format!("memory limit {} MiB", m / (1024 * 1024)),
    );
    format!(
        "container: {cpus}, {memory}, {} CPUs in the affinity mask",
        crate::container::affinity_cpus()
    )
}

/// `--log-directory` and its file names, `--rotate-logs`.
pub fn log_files_line(f: &rwsgi_shared::config::LogFiles) -> String {
    let name = |p: &Option<std::path::PathBuf>| match p {
        Some(p) => p.display().to_string(),
        None => "the terminal".to_owned(),
    };
    let mut line = format!("log files: error log {}", name(&f.error));
    if f.access.is_some() {
        line.push_str(&format!(", access log {}", name(&f.access)));
    }
    if f.startup.is_some() {
        line.push_str(&format!(", start-up log {}", name(&f.startup)));
    }
    match f.rotate {
        Some(r) => line.push_str(&format!(
            "; rotated past {} bytes, {} old files of each kept (--rotate-logs)",
            r.max_bytes, r.keep
        )),
        None => line.push_str("; not rotated"),
    }
    line
}
