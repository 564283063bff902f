//! Integration tests: the real `rwsgi` binary, real HTTP over loopback,
//! real signals. One binary, one module per topic.

mod apps;
mod auth;
mod basics;
mod cli;
mod compression;
mod debugging;
mod deploy;
mod error_documents;
mod faults;
mod hosts;
mod http2;
mod http_rules;
mod identity;
mod interrupt;
mod lifecycle;
mod listings;
mod logfiles;
mod logs;
mod misuse;
mod observability;
mod preload;
mod proxies;
mod proxy_mounts;
mod reloading;
mod rolling;
mod services;
mod setup_server;
mod slow_requests;
mod statics;
mod supervision;
mod telemetry;
mod tls;
mod tls_paths;
mod uploads;
mod wsgi;
