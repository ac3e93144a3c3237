//! Timestamps. The only place daydream reads the clock for what it records.

/// Now in UTC, RFC 3339 to the millisecond: when actions were made.
pub fn now_utc() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Local time, ISO format to the second, no zone: the seed's `created_at` in combo_mappings.csv.
pub fn now_local_seconds() -> String {
    chrono::Local::now().format("%Y-%m-%dT%H:%M:%S").to_string()
}
