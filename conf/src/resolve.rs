//! From parsed options to a validated `ServerConfig`.

use crate::cli::{ApplicationType, LogFormatArg, LogLevelArg, PreloadArg, StartServer};
use crate::error::{invalid, ConfError};
use rwsgi_shared::channel::MAX_MESSAGE;
use rwsgi_shared::config::{
    AppSpec, AppType, Limits, LogFormat, LogLevel, PythonSpec, Recycle, ServerConfig, Timeouts,
};
use rwsgi_shared::config::{ErrorDocument, StaticConfig, UrlAlias, MAX_HEADER_BUFFER};
use std::path::{Path, PathBuf};

mod files;

use files::{log_files, mime_types};

/// Validates the options and resolves paths against the current directory.
pub fn resolve(args: &StartServer) -> Result<ServerConfig, ConfError> {
    let processes = match args.processes {
        // --debug-mode: one process, whatever --processes says.
        _ if args.debug.wanted() => 1,
        None => 1,
        Some(crate::cli::Processes::Count(n)) => n,
        Some(crate::cli::Processes::Auto) => crate::container::auto_processes(
            &crate::container::limits(),
            crate::container::affinity_cpus(),
        ),
    };
    let cwd = std::env::current_dir()
        .map_err(|e| ConfError::Invalid(format!("cannot read the current directory: {e}")))?;
    let working_directory = match &args.working_directory {
        Some(dir) => existing_dir("working-directory", &absolute(&cwd, dir))?,
        None => cwd.clone(),
    };
    let app = app_spec(args, &cwd)?;
    let app_kind = app.kind;
    let python_home = args
        .python_home
        .clone()
        .or_else(|| std::env::var_os("VIRTUAL_ENV").map(PathBuf::from))
        .map(|p| existing_dir("python-home", &absolute(&cwd, &p)))
        .transpose()?;
    let python_paths = args
        .python_paths
        .iter()
        .map(|p| absolute(&cwd, p))
        .collect();
    let debug = crate::debug::resolve(&args.debug, &cwd, &working_directory)?;
    fits_the_channel(crate::debug::apply(ServerConfig {
        host: args.host.clone(),
        admin: match args.admin_port {
            Some(port) => Some(admin(args, port)?),
            // mod_wsgi-express's telemetry UI binds 127.0.0.1 too.
            None if args.enable_telemetry => Some(rwsgi_shared::config::Admin {
                host: "127.0.0.1".to_owned(),
                port: args.telemetry_ui_port,
                status_public: false,
            }),
            None => None,
        },
        port: args.port,
        server_name: args.server_name.clone().unwrap_or_else(|| {
            if args.host.is_empty() {
                "localhost".to_owned()
            } else {
                args.host.clone()
            }
        }),
        processes: processes as usize,
        threads: args.threads as usize,
        multiprocess: args.processes.is_some() && processes > 1,
        app,
        python: PythonSpec {
            working_directory,
            python_paths,
            python_home,
            environ: environ_extras(args)?,
            locale: non_empty("locale", args.locale.as_deref())?,
            lang: non_empty("lang", args.lang.as_deref())?,
            reload_on_changes: args.reload_on_changes,
            disable_reloading: args.disable_reloading,
            warnoptions: warnoptions(&args.python_warnings)?,
            switch_interval_us: match args.switch_interval {
                Some(v) if !(v.is_finite() && v > 0.0 && v <= 3600.0) => {
                    return Err(invalid(
                        "switch-interval",
                        format_args!("{v} is not a positive number of seconds"),
                    ))
                }
                other => other.map(|v| ((v * 1e6).round() as u64).max(1)),
            },
        },
        mount_point: mount_point(&args.mount_point)?,
        limits: limits(args)?,
        chunked_request: args.chunked_request,
        preload: match args.preload {
            PreloadArg::None => rwsgi_shared::config::Preload::None,
            PreloadArg::Interpreter => rwsgi_shared::config::Preload::Interpreter,
            PreloadArg::Application => rwsgi_shared::config::Preload::Application,
        },
        timeouts: timeouts(args)?,
        listen_backlog: positive("listen-backlog", i64::from(args.listen_backlog))? as i32,
        max_clients: match args.max_clients {
            Some(0) => return Err(invalid("max-clients", "must be greater than zero")),
            Some(n) => n,
            // What the workers can hold once the soft limit is raised to
            // the hard one (the master does that at start).
            None => {
                let (_, hard) = rwsgi_shared::rlimit::nofile();
                processes as usize * rwsgi_shared::rlimit::connections_per_worker(hard) as usize
            }
        },
        recycle: Recycle {
            max_requests: request_count("maximum-requests", args.maximum_requests)?,
            max_requests_jitter: request_count(
                "maximum-requests-jitter",
                args.maximum_requests_jitter,
            )?,
            restart_interval_ms: if args.restart_interval == 0.0 {
                0
            } else {
                seconds("restart-interval", args.restart_interval)?
            },
            memory_limit_mb: args.memory_limit,
            cpu_time_limit_s: args.cpu_time_limit,
            inactivity_ms: if args.inactivity_timeout == 0.0 {
                0
            } else {
                seconds("inactivity-timeout", args.inactivity_timeout)?
            },
        },
        log_level: match args.log_level.unwrap_or(if args.verbose_debugging {
            LogLevelArg::Debug
        } else {
            LogLevelArg::Info
        }) {
            LogLevelArg::Debug => LogLevel::Debug,
            LogLevelArg::Info | LogLevelArg::Notice => LogLevel::Info,
            LogLevelArg::Warn => LogLevel::Warn,
            LogLevelArg::Error | LogLevelArg::Crit | LogLevelArg::Alert | LogLevelArg::Emerg => {
                LogLevel::Error
            }
        },
        log_format: match args.log_format {
            LogFormatArg::Text => LogFormat::Text,
            LogFormatArg::Json => LogFormat::Json,
        },
        access_log: args.access_log,
        server_status: args.server_status,
        trust_proxy_headers: {
            rwsgi_http::forwarded::Rules::new(&args.trust_proxy_headers, &args.trust_proxies)
                .map_err(|e| {
                    let option = if e.contains("proxy header") {
                        "trust-proxy-header"
                    } else {
                        "trust-proxy"
                    };
                    invalid(option, e)
                })?;
            args.trust_proxy_headers.clone()
        },
        trust_proxies: args.trust_proxies.clone(),
        proxy_protocol: args.proxy_protocol,
        access_log_format: {
            rwsgi_http::access_log::Format::parse(&args.access_log_format)
                .map_err(|e| invalid("access-log-format", &e))?;
            args.access_log_format.clone()
        },
        request_id_header: match &args.request_id_header {
            Some(h)
                if !h.is_empty() && h.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') =>
            {
                Some(h.clone())
            }
            Some(_) => {
                return Err(invalid(
                    "request-id-header",
                    "a header name: letters, digits and -",
                ))
            }
            None => None,
        },
        statics: statics(args, &cwd, app_kind)?,
        guard: crate::guard::resolve(args, &cwd)?,
        run_as: crate::identity::resolve(args.user.as_deref(), args.group.as_deref())?,
        virtual_host: virtual_host(args)?,
        pid_file: args.pid_file.as_ref().map(|p| absolute(&cwd, p)),
        envvars_script: match &args.envvars_script {
            Some(p) if !absolute(&cwd, p).is_file() => {
                return Err(invalid(
                    "envvars-script",
                    format_args!("{}: no such file", p.display()),
                ))
            }
            other => other.as_ref().map(|p| absolute(&cwd, p)),
        },
        map_head_to_get: args.map_head_to_get == crate::cli::MapHeadToGetArg::On,
        process_name: process_name("process-name", args.process_name.as_deref())?,
        process_group: process_name("process-group", args.process_group.as_deref())?,
        // As Apache's <Location>, a path without a leading / matches nothing.
        ignore_activity: args.ignore_activity.clone(),
        compress_responses: args.compress_responses,
        application_group: match args.application_group.as_deref() {
            // mod_wsgi's environ says "" for the main interpreter.
            None | Some("%{GLOBAL}") => String::new(),
            Some(name) => name.to_owned(),
        },
        tls: crate::tls::resolve(args, &cwd)?,
        http2: args.http2,
        log_files: log_files(args, &cwd)?,
        python_eggs: args.python_eggs.as_ref().map(|p| absolute(&cwd, p)),
        receive_buffer_size: args.receive_buffer_size,
        send_buffer_size: args.send_buffer_size,
        debug,
        slow_request_ms: match args.slow_requests {
            Some(v) if v != 0.0 => seconds("slow-requests", v)?,
            _ => 0,
        },
        services: crate::services::resolve(args, &cwd)?,
        proxy_pass: proxy_pass(args)?,
        server_metrics: args.server_metrics,
        telemetry: crate::telemetry::resolve(args, &cwd)?,
        enable_docs: args.enable_docs,
    }))
}

/// `--proxy-mount-point` (`--proxy-url-alias`), `--proxy-virtual-host`,
/// `--proxy-timeout`: every URL checked here, so a worker never starts
/// with a route it cannot serve.
fn proxy_pass(args: &StartServer) -> Result<rwsgi_shared::config::ProxyPassConfig, ConfError> {
    let pairs = |v: &[String]| -> Vec<(String, String)> {
        v.chunks_exact(2)
            .map(|p| (p[0].clone(), p[1].clone()))
            .collect()
    };
    let mut mounts = pairs(&args.proxy_mount_points);
    let aliases = pairs(&args.proxy_url_aliases);
    let virtual_hosts = pairs(&args.proxy_virtual_hosts);
    rwsgi_http::proxy_pass::Table::new(&mounts, &virtual_hosts)
        .map_err(|(option, why)| invalid(option, why))?;
    rwsgi_http::proxy_pass::Table::new(&aliases, &[])
        .map_err(|(_, why)| invalid("proxy-url-alias", why))?;
    mounts.extend(aliases);
    // Apache's ProxyTimeout defaults to its Timeout (--socket-timeout,
    // whose 0 is Apache's default of 60 s).
    let timeout_ms = match args.proxy_timeout.filter(|t| *t != 0.0) {
        Some(t) => seconds("proxy-timeout", t)?,
        None if args.socket_timeout == 0.0 => 60_000,
        None => seconds("socket-timeout", args.socket_timeout)?,
    };
    Ok(rwsgi_shared::config::ProxyPassConfig {
        mounts,
        virtual_hosts,
        timeout_ms,
    })
}

/// One warning naming the `--access-log-format` directives rendered as `-`.
pub fn access_log_warning(args: &StartServer) -> Option<String> {
    let (_, unsupported) =
        rwsgi_http::access_log::Format::parse_lenient(&args.access_log_format).ok()?;
    (!unsupported.is_empty()).then(|| {
        format!(
            "--access-log-format: {} not available in rwsgi, logged as -",
            unsupported.join(" ")
        )
    })
}

/// `--server-name`, `--server-alias`, `--allow-localhost`: mod_wsgi-express
/// makes a name-based virtual host only when a server name is given.
fn virtual_host(
    args: &StartServer,
) -> Result<Option<rwsgi_shared::config::VirtualHost>, ConfError> {
    let Some(name) = &args.server_name else {
        return Ok(None);
    };
    let name = host_name("server-name", name)?;
    let aliases = args
        .server_aliases
        .iter()
        .map(|a| host_name("server-alias", a))
        .collect::<Result<_, _>>()?;
    Ok(Some(rwsgi_shared::config::VirtualHost {
        name,
        aliases,
        allow_localhost: args.allow_localhost,
    }))
}

/// A host name (or alias pattern) as Host headers are compared: lower
/// case, no port, no trailing dot.
fn host_name(option: &str, value: &str) -> Result<String, ConfError> {
    let name = value.trim_end_matches('.').to_ascii_lowercase();
    let allowed =
        |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'*' | b'?');
    if name.is_empty() || !name.bytes().all(allowed) {
        return Err(invalid(
            option,
            format_args!(
                "{value} is not a host name (letters, digits, '-', '.', wildcards * and ?)"
            ),
        ));
    }
    Ok(name)
}

/// `--admin-port` and `--admin-host`: the admin listener cannot share the
/// main listener's address (the second bind would fail at start).
fn admin(args: &StartServer, port: u16) -> Result<rwsgi_shared::config::Admin, ConfError> {
    let host = args.admin_host.clone().unwrap_or_else(|| args.host.clone());
    if port != 0 && port == args.port && host == args.host {
        return Err(invalid(
            "admin-port",
            format_args!("{port} is also --port: the admin listener needs a port of its own"),
        ));
    }
    Ok(rwsgi_shared::config::Admin {
        host,
        port,
        status_public: args.admin_status_public,
    })
}

fn absolute(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

fn existing_dir(option: &str, p: &Path) -> Result<PathBuf, ConfError> {
    if !p.is_dir() {
        return Err(invalid(
            option,
            format_args!("{} is not a directory", p.display()),
        ));
    }
    p.canonicalize()
        .map_err(|e| invalid(option, format_args!("{}: {e}", p.display())))
}

fn app_spec(args: &StartServer, cwd: &Path) -> Result<AppSpec, ConfError> {
    let entry = args
        .entry_point
        .clone()
        .or_else(|| args.entry_point_positional.clone());
    let kind = match args.application_type {
        ApplicationType::Script => AppType::Script,
        ApplicationType::Module => AppType::Module,
        ApplicationType::Paste => AppType::Paste,
        ApplicationType::Static => AppType::Static,
    };
    let callable = args.callable_object.clone();
    if callable.is_empty() || !callable.chars().all(|c| c.is_alphanumeric() || c == '_') {
        return Err(invalid(
            "callable-object",
            format_args!("{callable:?} is not a Python name"),
        ));
    }
    let entry_point = match (kind, entry) {
        (AppType::Static, _) => String::new(),
        // mod_wsgi-express serves its default page: an empty script
        // path is the worker's built-in one.
        (_, None) => {
            return Ok(AppSpec {
                kind: AppType::Script,
                entry_point: String::new(),
                callable,
            })
        }
        (AppType::Script | AppType::Paste, Some(path)) => {
            let p = absolute(cwd, Path::new(&path));
            if !p.is_file() {
                return Err(invalid(
                    "entry-point",
                    format_args!("{path}: no such file (application type {})", kind.as_str()),
                ));
            }
            p.canonicalize()
                .map_err(|e| invalid("entry-point", format_args!("{path}: {e}")))?
                .to_string_lossy()
                .into_owned()
        }
        (AppType::Module, Some(name)) => {
            let module = name.split(':').next().unwrap_or_default();
            let valid = !module.is_empty()
                && module.split('.').all(|part| {
                    !part.is_empty() && part.chars().all(|c| c.is_alphanumeric() || c == '_')
                });
            if !valid {
                return Err(invalid(
                    "entry-point",
                    format_args!("{name:?} is not a module path like package.module"),
                ));
            }
            name
        }
    };
    Ok(AppSpec {
        kind,
        entry_point,
        callable,
    })
}

/// `--passenv` values present in the server's environment, then `--setenv` pairs.
fn environ_extras(args: &StartServer) -> Result<Vec<(String, String)>, ConfError> {
    let mut extras = Vec::new();
    for name in &args.passenv {
        valid_env_name("passenv", name)?;
        if let Ok(value) = std::env::var(name) {
            extras.push((name.clone(), value));
        }
    }
    for pair in args.setenv.chunks(2) {
        let [name, value] = pair else {
            return Err(invalid("setenv", "needs a NAME and a VALUE"));
        };
        valid_env_name("setenv", name)?;
        extras.push((name.clone(), value.clone()));
    }
    Ok(extras)
}

/// `--python-warnings`: `action[:message[:category[:module[:line]]]]`, as
/// Python's -W; the action is checked here so a typo names the option.
fn warnoptions(raw: &[String]) -> Result<Vec<String>, ConfError> {
    const ACTIONS: &[&str] = &[
        "default", "error", "ignore", "always", "all", "module", "once",
    ];
    for w in raw {
        let action = w.split(':').next().unwrap_or_default();
        let known = ACTIONS
            .iter()
            .any(|a| !action.is_empty() && a.starts_with(action));
        if !known || w.contains('\0') || w.split(':').count() > 5 {
            return Err(invalid(
                "python-warnings",
                format_args!("{w:?} is not a warning filter like ignore::DeprecationWarning"),
            ));
        }
    }
    Ok(raw.to_vec())
}

fn valid_env_name(option: &str, name: &str) -> Result<(), ConfError> {
    if name.is_empty() || name.contains(['=', '\0']) {
        return Err(invalid(
            option,
            format_args!("{name:?} is not a variable name"),
        ));
    }
    Ok(())
}

fn non_empty(option: &str, value: Option<&str>) -> Result<Option<String>, ConfError> {
    match value {
        Some(v) if v.is_empty() || v.contains('\0') => {
            Err(invalid(option, format_args!("{v:?} is not a locale name")))
        }
        other => Ok(other.map(str::to_owned)),
    }
}

/// A name for `ps`: not empty (the title is NUL-separated).
fn process_name(option: &str, value: Option<&str>) -> Result<Option<String>, ConfError> {
    match value {
        Some(v) if v.is_empty() || v.contains('\0') => Err(invalid(option, "an empty name")),
        other => Ok(other.map(str::to_owned)),
    }
}

/// `--url-alias`, `--document-root`, `--directory-index` and the
/// `--static-*` options. Relative paths are relative to the start directory
/// (like mod_wsgi-express, not to `--working-directory`). With
/// `--application-type static` the document root defaults to ENTRY_POINT,
/// else the current directory.
fn statics(args: &StartServer, cwd: &Path, kind: AppType) -> Result<StaticConfig, ConfError> {
    let mut pairs: Vec<(String, String)> = args
        .url_aliases
        .chunks(2)
        .filter_map(|p| match p {
            [url, path] => Some((url.clone(), path.clone())),
            _ => None,
        })
        .collect();
    if pairs.is_empty() {
        // RWSGI_URL_ALIAS="/static htdocs /media media" (paths without spaces).
        if let Ok(v) = std::env::var("RWSGI_URL_ALIAS") {
            let words: Vec<&str> = v.split_whitespace().collect();
            if words.len() % 2 == 1 {
                return Err(invalid(
                    "url-alias",
                    "RWSGI_URL_ALIAS needs URL-PATH PATH pairs",
                ));
            }
            pairs = words
                .chunks(2)
                .map(|p| (p[0].to_owned(), p[1].to_owned()))
                .collect();
        }
    }
    let mut aliases: Vec<UrlAlias> = Vec::with_capacity(pairs.len());
    for (url, path) in pairs {
        if !url.starts_with('/') || url.contains(['?', '#', ' ', '\\']) {
            return Err(invalid(
                "url-alias",
                format_args!("{url:?} is not a URL path starting with '/'"),
            ));
        }
        if path.is_empty() {
            return Err(invalid("url-alias", format_args!("{url}: empty path")));
        }
        let url = url.trim_end_matches('/').to_owned();
        if aliases.iter().any(|a| a.url == url) {
            return Err(invalid(
                "url-alias",
                format_args!("{}/ is given twice", url),
            ));
        }
        aliases.push(UrlAlias {
            url,
            path: absolute(cwd, Path::new(&path)),
        });
    }
    aliases.sort_by_key(|a| std::cmp::Reverse(a.url.len()));
    let only_static = kind == AppType::Static;
    let document_root = match (&args.document_root, only_static) {
        (Some(dir), _) => Some(existing_dir("document-root", &absolute(cwd, dir))?),
        (None, true) => Some(
            match args
                .entry_point
                .as_ref()
                .or(args.entry_point_positional.as_ref())
            {
                Some(dir) => existing_dir("entry-point", &absolute(cwd, Path::new(dir)))?,
                None => cwd.to_path_buf(),
            },
        ),
        (None, false) => None,
    };
    if let Some(name) = &args.directory_index {
        if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\\', '\0']) {
            return Err(invalid(
                "directory-index",
                format_args!("{name:?} is not a file name"),
            ));
        }
    }
    let mut config = StaticConfig {
        aliases,
        document_root,
        directory_index: args.directory_index.clone(),
        only_static,
        max_age: args.static_max_age,
        follow_symlinks: args.static_follow_symlinks,
        allow_dotfiles: args.static_allow_dotfiles,
        compress: args.compress_responses,
        directory_listing: args.directory_listing,
        error_documents: Vec::new(),
        error_override: args.error_override,
        mime_types: match &args.mime_types {
            Some(file) => mime_types(&absolute(cwd, file))?,
            None => Vec::new(),
        },
    };
    config.error_documents = error_documents(args, &config)?;
    Ok(config)
}

/// `--error-document STATUS DOCUMENT` pairs: a 4xx or 5xx status, and a
/// local document that the static files serve now.
fn error_documents(
    args: &StartServer,
    statics: &StaticConfig,
) -> Result<Vec<ErrorDocument>, ConfError> {
    use rwsgi_http::statics::error_documents::{classify, parse_status, ErrorPages};
    let mut documents = Vec::new();
    for pair in args.error_documents.chunks(2) {
        let [status, value] = pair else {
            return Err(invalid("error-document", "needs STATUS URL-PATH"));
        };
        documents.push(ErrorDocument {
            status: parse_status(status).map_err(|e| invalid("error-document", e))?,
            document: classify(value),
        });
    }
    let (files, _) = rwsgi_http::statics::StaticFiles::new(statics);
    ErrorPages::new(&StaticConfig {
        error_documents: documents.clone(),
        ..StaticConfig::default()
    })
    .check(&files)
    .map_err(|e| invalid("error-document", e))?;
    Ok(documents)
}

fn mount_point(raw: &str) -> Result<String, ConfError> {
    if !raw.starts_with('/') {
        return Err(invalid("mount-point", "must start with '/'"));
    }
    Ok(raw.trim_end_matches('/').to_owned())
}

fn positive(option: &str, v: i64) -> Result<i64, ConfError> {
    if v <= 0 {
        return Err(invalid(option, "must be greater than zero"));
    }
    Ok(v)
}

fn seconds(option: &str, v: f64) -> Result<u64, ConfError> {
    if !v.is_finite() || v <= 0.0 || v > 31_536_000.0 {
        return Err(invalid(
            option,
            format_args!("{v} is not a positive number of seconds"),
        ));
    }
    // At least a millisecond: 0 means "never" to some options.
    Ok(((v * 1000.0).round() as u64).max(1))
}

/// What a timeout of 0 is in mod_wsgi-express: no timeout. rwsgi's
/// deadlines are numbers, so "none" is one no request reaches.
pub const NO_TIMEOUT_MS: u64 = 31_536_000_000;

/// A timeout mod_wsgi-express turns off with 0.
fn seconds_or_off(option: &str, v: f64) -> Result<u64, ConfError> {
    if v == 0.0 {
        return Ok(NO_TIMEOUT_MS);
    }
    seconds(option, v)
}

/// A wait that 0 makes immediate (`--graceful-timeout 0`: stop at once).
fn seconds_or_now(option: &str, v: f64) -> Result<u64, ConfError> {
    if v == 0.0 {
        return Ok(1);
    }
    seconds(option, v)
}

fn timeouts(a: &StartServer) -> Result<Timeouts, ConfError> {
    Ok(Timeouts {
        startup_ms: seconds_or_off("startup-timeout", a.startup_timeout)?,
        shutdown_ms: seconds_or_now("shutdown-timeout", a.shutdown_timeout)?,
        graceful_ms: seconds_or_now("graceful-timeout", a.graceful_timeout)?,
        request_ms: seconds_or_off("request-timeout", a.request_timeout)?,
        deadlock_ms: seconds_or_off("deadlock-timeout", a.deadlock_timeout)?,
        shutdown_delay_ms: if a.shutdown_delay == 0.0 {
            0
        } else {
            seconds("shutdown-delay", a.shutdown_delay)?
        },
        queue_ms: seconds_or_off("queue-timeout", a.queue_timeout)?,
        // 0 turns keep-alive off (Limits::keep_alive); the deadline is moot.
        keep_alive_ms: seconds_or_now("keep-alive-timeout", a.keep_alive_timeout)?,
        header_ms: seconds_or_off("header-timeout", a.header_timeout)?,
        // mod_wsgi-express: 0 is Apache's default Timeout, 60 s.
        socket_ms: if a.socket_timeout == 0.0 {
            60_000
        } else {
            seconds("socket-timeout", a.socket_timeout)?
        },
        header_max_ms: seconds_or_off("header-max-timeout", a.header_max_timeout)?,
        header_min_rate: a.header_min_rate,
        body_ms: seconds_or_off("body-timeout", a.body_timeout)?,
        body_max_ms: if a.body_max_timeout == 0.0 {
            0
        } else {
            seconds("body-max-timeout", a.body_max_timeout)?
        },
        body_min_rate: a.body_min_rate,
        interrupt_ms: if a.interrupt_timeout == 0.0 {
            0
        } else {
            seconds("interrupt-timeout", a.interrupt_timeout)?
        },
        eviction_ms: if a.eviction_timeout == 0.0 {
            0
        } else {
            seconds("eviction-timeout", a.eviction_timeout)?
        },
    })
}

/// A count or size from 1 to `max`.
fn in_range(option: &str, v: usize, max: usize) -> Result<usize, ConfError> {
    if v == 0 || v > max {
        return Err(invalid(option, format_args!("{v} is not from 1 to {max}")));
    }
    Ok(v)
}

fn limits(a: &StartServer) -> Result<Limits, ConfError> {
    // A line or a field longer than the largest head could never be
    // received: no such limit is accepted either.
    Ok(Limits {
        // 0 is Apache's "unlimited".
        request_body: if a.limit_request_body == 0 {
            u64::MAX
        } else {
            a.limit_request_body
        },
        keep_alive: a.keep_alive_timeout != 0.0,
        request_line: in_range(
            "limit-request-line",
            a.limit_request_line,
            MAX_HEADER_BUFFER,
        )?,
        header_fields: in_range("limit-request-fields", a.limit_request_fields, 32_768)?,
        header_field_size: in_range(
            "limit-request-field-size",
            a.limit_request_field_size,
            MAX_HEADER_BUFFER,
        )?,
        // A draining worker hands an idle connection back with the head
        // read so far: the channel carries this much (see MAX_HEADER_BUFFER).
        // mod_wsgi-express's default is 0: the built-in size.
        header_buffer: if a.header_buffer_size == 0 {
            Limits::default().header_buffer
        } else {
            in_range(
                "header-buffer-size",
                a.header_buffer_size,
                MAX_HEADER_BUFFER,
            )?
        },
    })
}

/// The largest `--maximum-requests` and `--maximum-requests-jitter`: their
/// sum, and the jitter plus one, are computed by the master.
const MAX_REQUESTS: u64 = u32::MAX as u64;

fn request_count(option: &str, v: u64) -> Result<u64, ConfError> {
    if v > MAX_REQUESTS {
        return Err(invalid(option, format_args!("at most {MAX_REQUESTS}")));
    }
    Ok(v)
}

/// The configuration travels to every worker as one channel message.
fn fits_the_channel(config: ServerConfig) -> Result<ServerConfig, ConfError> {
    // The message is a one-byte tag and the serialized configuration.
    let len = 1 + config.to_bytes().len();
    if len > MAX_MESSAGE {
        return Err(ConfError::Invalid(format!(
            "the configuration is too large to pass to the workers ({len} bytes, at most {MAX_MESSAGE}): shorten the --setenv or --passenv values"
        )));
    }
    Ok(config)
}
