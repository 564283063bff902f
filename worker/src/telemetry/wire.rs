//! mod_wsgi 6's telemetry datagram (`wsgi_telemetry.h`, decoded by the
//! mod_wsgi-telemetry ingester's `wire.py`): a 24-byte header, then TLV
//! records, all little-endian.
//!
//! ```text
//! header: u32 magic "WSGI" | u8 version 1 | u8 kind | u16 flags 0
//!         | u32 pid | u32 seq | f64 stamp (seconds since the epoch)
//! record: u16 field id | u8 type | [u16 length: bytes and arrays] | value
//! ```

/// Datagram kinds (`WSGI_METRICS_KIND_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// The periodic sample (mod_wsgi's `request_metrics`).
    Request = 2,
    SlowRequest = 4,
    ProcessStarted = 5,
    ProcessStopping = 6,
    ProcessStopped = 7,
}

const MAGIC: &[u8; 4] = b"WSGI";
const VERSION: u8 = 1;
const T_U64: u8 = 0x01;
const T_F64: u8 = 0x02;
const T_BYTES: u8 = 0x04;
const T_I32_ARRAY: u8 = 0x05;
const T_F64_ARRAY: u8 = 0x06;

/// Field ids (`WSGI_METRICS_F_*`), those rwsgi has values for.
pub mod field {
    pub const PYTHON_VERSION: u16 = 2;
    pub const HOSTNAME: u16 = 5;
    pub const PROCESS_GROUP: u16 = 6;
    pub const PROCESS_PARENT_PID: u16 = 7;
    pub const SAMPLE_PERIOD: u16 = 10;
    pub const TELEMETRY_INTERVAL: u16 = 11;
    pub const SLOW_REQUESTS_THRESHOLD: u16 = 12;
    pub const SWITCH_INTERVAL: u16 = 13;
    pub const REQUEST_COUNT: u16 = 20;
    pub const REQUEST_THROUGHPUT: u16 = 21;
    pub const CAPACITY_UTILIZATION: u16 = 22;
    pub const CPU_USER_UTILIZATION: u16 = 30;
    pub const CPU_SYSTEM_UTILIZATION: u16 = 31;
    pub const CPU_UTILIZATION: u16 = 32;
    pub const MEMORY_RSS: u16 = 40;
    pub const MEMORY_MAX_RSS: u16 = 41;
    pub const REQUEST_THREADS_MAXIMUM: u16 = 50;
    pub const REQUEST_THREADS_STARTED: u16 = 51;
    pub const REQUEST_THREADS_ACTIVE: u16 = 52;
    pub const QUEUE_TIME: u16 = 61;
    pub const APPLICATION_TIME: u16 = 63;
    pub const REQUEST_TIME: u16 = 64;
    pub const REQUEST_THREADS_COMPLETED: u16 = 110;
    pub const REQUEST_THREADS_CURRENT_ELAPSED: u16 = 113;
    pub const STATUS_1XX_TOTAL: u16 = 120;
    pub const PROCESS_UPTIME: u16 = 131;
    pub const LIFETIME_REQUEST_COUNT: u16 = 132;
    pub const ACTIVE_REQUESTS_AT_DECISION: u16 = 133;
    pub const ACTIVE_REQUESTS_AT_EXIT: u16 = 134;
    pub const GRACEFUL_DRAIN: u16 = 135;
    pub const SLOW_RECORD_STATE: u16 = 200;
    pub const SLOW_START_STAMP: u16 = 201;
    pub const SLOW_DURATION: u16 = 202;
    pub const SLOW_THREAD_ID: u16 = 203;
    pub const SLOW_METHOD: u16 = 210;
    pub const SLOW_SCHEME: u16 = 211;
    pub const SLOW_HOSTNAME: u16 = 212;
    pub const SLOW_SCRIPT_NAME: u16 = 213;
    pub const SLOW_PATH_INFO: u16 = 214;
    pub const SLOW_PROTOCOL: u16 = 215;
    pub const SLOW_PEER_IP: u16 = 216;
    pub const SLOW_USER_AGENT: u16 = 217;
    pub const SLOW_QUEUE_TIME: u16 = 221;
    pub const SLOW_APPLICATION_TIME: u16 = 223;
    pub const SLOW_STATUS: u16 = 240;
}

/// The largest datagram built (mod_wsgi's reporter raises SO_SNDBUF to 64 KiB).
const MAX: usize = 60 * 1024;

/// One datagram being built.
pub struct Datagram {
    buf: Vec<u8>,
}

impl Datagram {
    pub fn new(kind: Kind, pid: u32, seq: u32, stamp: f64) -> Datagram {
        let mut buf = Vec::with_capacity(512);
        buf.extend_from_slice(MAGIC);
        buf.push(VERSION);
        buf.push(kind as u8);
        buf.extend_from_slice(&0u16.to_le_bytes());
        buf.extend_from_slice(&pid.to_le_bytes());
        buf.extend_from_slice(&seq.to_le_bytes());
        buf.extend_from_slice(&stamp.to_le_bytes());
        Datagram { buf }
    }

    fn tag(&mut self, id: u16, ty: u8) {
        self.buf.extend_from_slice(&id.to_le_bytes());
        self.buf.push(ty);
    }

    pub fn u64(mut self, id: u16, v: u64) -> Datagram {
        self.tag(id, T_U64);
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }

    pub fn f64(mut self, id: u16, v: f64) -> Datagram {
        self.tag(id, T_F64);
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }

    /// A string, cut to fit a u16 length (on a character boundary).
    pub fn bytes(mut self, id: u16, v: &str) -> Datagram {
        let mut end = v.len().min(4096);
        while !v.is_char_boundary(end) {
            end -= 1;
        }
        self.tag(id, T_BYTES);
        self.buf.extend_from_slice(&(end as u16).to_le_bytes());
        self.buf.extend_from_slice(&v.as_bytes()[..end]);
        self
    }

    /// A string field only when there is one (mod_wsgi omits empty ones).
    pub fn bytes_if(self, id: u16, v: Option<&str>) -> Datagram {
        match v {
            Some(s) if !s.is_empty() => self.bytes(id, s),
            _ => self,
        }
    }

    pub fn i32s(mut self, id: u16, v: &[i32]) -> Datagram {
        let n = v.len().min(u16::MAX as usize);
        self.tag(id, T_I32_ARRAY);
        self.buf.extend_from_slice(&(n as u16).to_le_bytes());
        for x in &v[..n] {
            self.buf.extend_from_slice(&x.to_le_bytes());
        }
        self
    }

    pub fn f64s(mut self, id: u16, v: &[f64]) -> Datagram {
        let n = v.len().min(u16::MAX as usize);
        self.tag(id, T_F64_ARRAY);
        self.buf.extend_from_slice(&(n as u16).to_le_bytes());
        for x in &v[..n] {
            self.buf.extend_from_slice(&x.to_le_bytes());
        }
        self
    }

    /// The bytes to send, or `None` past the size a datagram may have.
    pub fn finish(self) -> Option<Vec<u8>> {
        (self.buf.len() <= MAX).then_some(self.buf)
    }
}

/// Sets the sequence number of a finished datagram.
pub fn set_seq(datagram: &mut [u8], seq: u32) {
    if let Some(field) = datagram.get_mut(12..16) {
        field.copy_from_slice(&seq.to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_and_records_are_laid_out_as_wire_py_decodes_them() {
        let d = Datagram::new(Kind::Request, 77, 3, 1.5)
            .u64(field::REQUEST_COUNT, 9)
            .f64(field::SAMPLE_PERIOD, 0.25)
            .bytes(field::HOSTNAME, "h")
            .i32s(field::REQUEST_THREADS_COMPLETED, &[1, -2])
            .f64s(field::REQUEST_THREADS_CURRENT_ELAPSED, &[0.5])
            .bytes_if(field::PROCESS_GROUP, None)
            .finish()
            .expect("small");
        let mut want = b"WSGI\x01\x02\x00\x00".to_vec();
        want.extend_from_slice(&77u32.to_le_bytes());
        want.extend_from_slice(&3u32.to_le_bytes());
        want.extend_from_slice(&1.5f64.to_le_bytes());
        want.extend_from_slice(&[20, 0, 1]);
        want.extend_from_slice(&9u64.to_le_bytes());
        want.extend_from_slice(&[10, 0, 2]);
        want.extend_from_slice(&0.25f64.to_le_bytes());
        want.extend_from_slice(&[5, 0, 4, 1, 0, b'h']);
        want.extend_from_slice(&[110, 0, 5, 2, 0]);
        want.extend_from_slice(&1i32.to_le_bytes());
        want.extend_from_slice(&(-2i32).to_le_bytes());
        want.extend_from_slice(&[113, 0, 6, 1, 0]);
        want.extend_from_slice(&0.5f64.to_le_bytes());
        assert_eq!(d, want);
        assert_eq!(d.len(), 24 + 11 + 11 + 6 + 13 + 13);
        let mut d = d;
        set_seq(&mut d, 0x0102_0304);
        assert_eq!(&d[12..16], &[4, 3, 2, 1]);
    }

    #[test]
    fn a_long_string_is_cut_on_a_character_boundary() {
        let long = "é".repeat(3000);
        let d = Datagram::new(Kind::SlowRequest, 1, 1, 0.0)
            .bytes(field::SLOW_PATH_INFO, &long)
            .finish()
            .expect("fits");
        let n = u16::from_le_bytes([d[27], d[28]]) as usize;
        assert_eq!(n, 4096);
        assert!(std::str::from_utf8(&d[29..29 + n]).is_ok());
    }
}
