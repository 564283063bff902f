//! Integration tests: the real `rwsgi` binary, real HTTP over loopback,
//! real signals. One binary, one module per topic.

mod apps;
mod auth;
mod basics;
mod cli;
mod compression;
mod deploy;
mod faults;
mod hosts;
mod http_rules;
mod identity;
mod interrupt;
mod lifecycle;
mod logs;
mod misuse;
mod observability;
mod preload;
mod proxies;
mod reloading;
mod rolling;
mod services;
mod statics;
mod supervision;
mod uploads;
mod wsgi;
