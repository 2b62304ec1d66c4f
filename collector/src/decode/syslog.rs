//! Syslog messages (RFC 5424, and the BSD format of RFC 3164) into log records,
//! parsed loosely as rsyslog does: what cannot be read as a header stays in the
//! message, so no line is refused.
//!
//! | syslog | Hopline (OTLP) |
//! | --- | --- |
//! | APP-NAME (RFC 3164's TAG) | resource `service.name` (`syslog` without one) |
//! | HOSTNAME | resource `host.name` |
//! | TIMESTAMP | the record's time (the receipt time without one, or with one before 2000 or more than a day ahead; RFC 3164's yearless times take the receipt's year, in the collector's time zone) |
//! | severity | severity text (`err`, `warning`, ...) and number as the OpenTelemetry Collector maps it: emerg 22, alert 19, crit 18, err 17, warning 13, notice 10, info 9, debug 5 |
//! | facility | `syslog.facility` (`daemon`, `local0`, ...) |
//! | PROCID | `process.pid` when a number, else `syslog.procid` |
//! | MSGID | `syslog.msgid` |
//! | STRUCTURED-DATA | `syslog.sd.<SD-ID>.<PARAM-NAME>` |
//! | MSG | the body |

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{Datelike, TimeZone, Utc};
use syslog_loose::{parse_message_with_year, ProcId, SyslogSeverity, Variant};

use super::convert::MAX_FUTURE_NANOS;
use super::convert::MIN_TIMESTAMP_NANOS;
use super::limits::Limit;
use crate::config::RecordLimits;
use crate::model::{AnyValue, KeyValue, LogRecord, Resource, Scope, Str};

/// The service of a message without an APP-NAME.
pub const DEFAULT_SERVICE: &str = "syslog";

/// Turns messages into records, one resource per (app, host).
pub struct Decoder {
    resources: HashMap<(String, String), (Str, Arc<Resource>)>,
    scope: Arc<Scope>,
}

impl Default for Decoder {
    fn default() -> Self {
        Self {
            resources: HashMap::new(),
            scope: Arc::new(Scope {
                name: Str::from_static("syslog"),
                version: String::new(),
                attributes: Vec::new(),
            }),
        }
    }
}

impl Decoder {
    /// The record of one message received at `now_nanos`.
    pub fn record(&mut self, message: &str, now_nanos: u64, limits: &RecordLimits) -> LogRecord {
        let now = Utc.timestamp_nanos(i64::try_from(now_nanos).unwrap_or(i64::MAX));
        let parsed = parse_message_with_year(
            message.trim_end_matches(['\r', '\n', '\0']),
            |date| {
                // A December message received in January is of last year.
                if date.0 > now.month() {
                    now.year() - 1
                } else {
                    now.year()
                }
            },
            Variant::Either,
        );
        let time = parsed
            .timestamp
            .and_then(|t| t.timestamp_nanos_opt())
            .and_then(|t| u64::try_from(t).ok())
            .filter(|t| {
                *t >= MIN_TIMESTAMP_NANOS && *t <= now_nanos.saturating_add(MAX_FUTURE_NANOS)
            })
            .unwrap_or(now_nanos);
        let mut attributes = Vec::new();
        if let Some(facility) = parsed.facility {
            attributes.push(KeyValue::new(
                "syslog.facility",
                AnyValue::Str(Str::from_static(facility.as_str())),
            ));
        }
        match parsed.procid {
            Some(ProcId::PID(pid)) => {
                attributes.push(KeyValue::new("process.pid", AnyValue::Int(i64::from(pid))))
            }
            Some(ProcId::Name(name)) => attributes.push(KeyValue::new(
                "syslog.procid",
                AnyValue::Str(Str::from(name)),
            )),
            None => {}
        }
        if let Some(msgid) = parsed.msgid {
            attributes.push(KeyValue::new(
                "syslog.msgid",
                AnyValue::Str(Str::from(msgid)),
            ));
        }
        for element in &parsed.structured_data {
            for (name, value) in &element.params {
                attributes.push(KeyValue::new(
                    format!("syslog.sd.{}.{name}", element.id),
                    AnyValue::Str(Str::from(*value)),
                ));
            }
        }
        let (severity_number, severity_text) = match parsed.severity {
            Some(severity) => (severity_number(severity), severity.as_str()),
            None => (0, ""),
        };
        let (service_name, resource) = self.resource(
            parsed.appname.unwrap_or(DEFAULT_SERVICE),
            parsed.hostname.unwrap_or(""),
            limits,
        );
        let mut record = LogRecord {
            time_unix_nano: time,
            observed_time_unix_nano: now_nanos,
            severity_number,
            severity_text: Str::from_static(severity_text),
            body: AnyValue::Str(Str::from(parsed.msg)),
            attributes,
            dropped_attributes_count: 0,
            flags: 0,
            trace_id: None,
            span_id: None,
            event_name: String::new(),
            service_name,
            resource,
            scope: Arc::clone(&self.scope),
        };
        let _cut = record.limit(limits);
        record
    }

    fn resource(&mut self, app: &str, host: &str, limits: &RecordLimits) -> (Str, Arc<Resource>) {
        let key = (app.to_string(), host.to_string());
        if let Some(found) = self.resources.get(&key) {
            return found.clone();
        }
        let mut attributes = vec![KeyValue::new("service.name", AnyValue::Str(Str::from(app)))];
        if !host.is_empty() {
            attributes.push(KeyValue::new("host.name", AnyValue::Str(Str::from(host))));
        }
        let mut resource = Resource {
            attributes,
            dropped_attributes_count: 0,
        };
        let _cut = resource.limit(limits);
        let name = match resource.attributes.first().map(|kv| &kv.value) {
            Some(AnyValue::Str(name)) => name.clone(),
            _ => Str::from_static(DEFAULT_SERVICE),
        };
        let found = (name, Arc::new(resource));
        // Bounded: a sender that makes up a new app name per line gets no cache.
        if self.resources.len() < 1024 {
            self.resources.insert(key, found.clone());
        }
        found
    }
}

/// The OpenTelemetry Collector's mapping of syslog severities.
fn severity_number(severity: SyslogSeverity) -> i32 {
    match severity {
        SyslogSeverity::SEV_EMERG => 22,
        SyslogSeverity::SEV_ALERT => 19,
        SyslogSeverity::SEV_CRIT => 18,
        SyslogSeverity::SEV_ERR => 17,
        SyslogSeverity::SEV_WARNING => 13,
        SyslogSeverity::SEV_NOTICE => 10,
        SyslogSeverity::SEV_INFO => 9,
        SyslogSeverity::SEV_DEBUG => 5,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2023-11-14T22:13:20Z.
    const NOW: u64 = 1_700_000_000 * 1_000_000_000;

    fn attribute<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a AnyValue> {
        crate::model::attribute(attributes, key)
    }

    #[test]
    fn rfc5424_fields_become_the_resource_severity_and_attributes() {
        let mut decoder = Decoder::default();
        let record = decoder.record(
            r#"<27>1 2023-11-14T22:13:19.5Z web-1 nginx 4711 ACCESS [req@32473 id="r-9" path="/cart"] upstream timed out"#,
            NOW,
            &RecordLimits::default(),
        );
        assert_eq!(record.time_unix_nano, 1_699_999_999_500_000_000);
        assert_eq!(&*record.service_name, "nginx");
        assert_eq!(
            attribute(&record.resource.attributes, "host.name"),
            Some(&AnyValue::Str("web-1".into()))
        );
        assert_eq!(
            (record.severity_number, &*record.severity_text),
            (17, "err")
        );
        assert_eq!(
            attribute(&record.attributes, "syslog.facility"),
            Some(&AnyValue::Str("daemon".into()))
        );
        assert_eq!(
            attribute(&record.attributes, "process.pid"),
            Some(&AnyValue::Int(4711))
        );
        assert_eq!(
            attribute(&record.attributes, "syslog.msgid"),
            Some(&AnyValue::Str("ACCESS".into()))
        );
        assert_eq!(
            attribute(&record.attributes, "syslog.sd.req@32473.path"),
            Some(&AnyValue::Str("/cart".into()))
        );
        assert_eq!(record.body, AnyValue::Str("upstream timed out".into()));
    }

    #[test]
    fn rfc3164_takes_the_receipt_year_and_anything_else_is_kept_as_it_came() {
        let mut decoder = Decoder::default();
        let limits = RecordLimits::default();
        let record = decoder.record(
            "<13>Nov 14 22:13:19 db-2 cron[88]: job done\n",
            NOW,
            &limits,
        );
        assert_eq!(&*record.service_name, "cron");
        assert_eq!(
            (record.severity_number, &*record.severity_text),
            (10, "notice")
        );
        assert_eq!(record.body, AnyValue::Str("job done".into()));
        assert_eq!(
            attribute(&record.attributes, "process.pid"),
            Some(&AnyValue::Int(88))
        );
        let expected = Utc
            .with_ymd_and_hms(2023, 11, 14, 22, 13, 19)
            .single()
            .and_then(|t| t.timestamp_nanos_opt())
            .expect("time") as u64;
        // In the collector's time zone (UTC on CI; the test allows any zone).
        assert!(record.time_unix_nano.abs_diff(expected) <= 14 * 3600 * 1_000_000_000);

        // A December line received on the first of January is of the year before.
        let january = 1_704_067_200 * 1_000_000_000 + 3_600 * 1_000_000_000; // 2024-01-01T01:00Z
        let record = decoder.record("<13>Dec 31 23:59:00 db-2 cron: late", january, &limits);
        assert!(record.time_unix_nano < january, "{}", record.time_unix_nano);

        // No header, a time before 2000, garbage: stored, at the receipt time.
        for line in [
            "just text",
            "<13>1 1970-01-01T00:00:00Z h a - - - old",
            "\u{0}\u{1}<>",
        ] {
            let record = decoder.record(line, NOW, &limits);
            assert_eq!(record.time_unix_nano, NOW, "{line}");
        }
        let record = decoder.record("just text", NOW, &limits);
        assert_eq!(&*record.service_name, DEFAULT_SERVICE);
        assert_eq!(record.body, AnyValue::Str("just text".into()));
    }
}
