//! The forwarded headers rwsgi knows, what each tells, and how each is
//! written in a log line.

/// What a group of headers tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Purpose {
    Client,
    Scheme,
    Host,
    Port,
    Prefix,
    Server,
}

/// The headers rwsgi knows, lowercase, with their purpose. `Forwarded`
/// (RFC 7239) speaks to three purposes at once.
pub(super) const KNOWN: &[(&str, &[Purpose])] = &[
    ("x-forwarded-for", &[Purpose::Client]),
    ("x-real-ip", &[Purpose::Client]),
    ("x-client-ip", &[Purpose::Client]),
    ("x-forwarded-proto", &[Purpose::Scheme]),
    ("x-forwarded-scheme", &[Purpose::Scheme]),
    ("x-scheme", &[Purpose::Scheme]),
    ("x-forwarded-ssl", &[Purpose::Scheme]),
    ("x-forwarded-https", &[Purpose::Scheme]),
    ("x-https", &[Purpose::Scheme]),
    ("x-forwarded-host", &[Purpose::Host]),
    ("x-host", &[Purpose::Host]),
    ("x-forwarded-port", &[Purpose::Port]),
    ("x-script-name", &[Purpose::Prefix]),
    ("x-forwarded-prefix", &[Purpose::Prefix]),
    ("x-forwarded-script-name", &[Purpose::Prefix]),
    // mod_wsgi 6's: SERVER_NAME.
    ("x-forwarded-server", &[Purpose::Server]),
    (
        "forwarded",
        &[Purpose::Client, Purpose::Scheme, Purpose::Host],
    ),
];

pub(super) fn purposes(name: &str) -> &'static [Purpose] {
    KNOWN
        .iter()
        .find(|(n, _)| name.eq_ignore_ascii_case(n))
        .map_or(&[], |(_, p)| p)
}

/// `x-forwarded-host` as usually written: `X-Forwarded-Host`, `X-Real-IP`.
pub(super) fn display_name(lower: &str) -> String {
    lower
        .split('-')
        .map(|word| match word {
            "ip" => "IP".to_owned(),
            w => {
                let mut c = w.chars();
                c.next().map_or_else(String::new, |f| {
                    f.to_ascii_uppercase().to_string() + c.as_str()
                })
            }
        })
        .collect::<Vec<_>>()
        .join("-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_names_as_written() {
        assert_eq!(display_name("x-forwarded-host"), "X-Forwarded-Host");
        assert_eq!(display_name("x-real-ip"), "X-Real-IP");
        assert_eq!(display_name("forwarded"), "Forwarded");
    }
}
