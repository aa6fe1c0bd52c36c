//! What a session says of the device it was created on, for a "your devices" listing: a label
//! the user sees, the end user's User-Agent and address as the caller saw them. All optional,
//! given at creation only, and personal data: stored sealed under the subject's device key
//! (`store::seal`), never logged, never in an error message.
//!
//! Each arrives percent-encoded, as `Session-Subject` does, and is checked before anything is
//! stored: text is UTF-8 without control characters, an address is an IPv4 or IPv6 address as
//! `std::net` reads it (dotted quads without leading zeros; no zone). An address is kept in its
//! canonical form (`2001:DB8::1` lists as `2001:db8::1`).

use std::net::IpAddr;

use crate::domain::error::Error;
use crate::domain::percent::percent_decode_lenient;

pub const MAX_LABEL_BYTES: usize = 128;
pub const MAX_AGENT_BYTES: usize = 512;

/// The longest a device's stored form can be: what the subject index entry must have room for.
pub const MAX_ENCODED_BYTES: usize = 1 + MAX_LABEL_BYTES + 2 + MAX_AGENT_BYTES + 1 + 16;

const BAD_LABEL: &str = "Session-Label is 1 to 128 bytes of percent-encoded UTF-8 text, \
    without control characters.";
const BAD_AGENT: &str = "Session-Agent is 1 to 512 bytes of percent-encoded UTF-8 text, \
    without control characters.";
const BAD_IP: &str = "Session-IP is an IPv4 or IPv6 address.";
const NO_SUBJECT: &str = "Session-Label, Session-Agent and Session-IP are kept only for a \
    session with a subject (Session-Subject).";

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Device {
    pub label: Option<String>,
    pub agent: Option<String>,
    pub ip: Option<IpAddr>,
}

/// The header values as they came (percent-encoded), any of them absent.
#[derive(Clone, Copy, Debug, Default)]
pub struct DeviceHeaders<'a> {
    pub label: Option<&'a str>,
    pub agent: Option<&'a str>,
    pub ip: Option<&'a str>,
}

impl Device {
    /// The device the headers describe, `None` when there are none; `has_subject` says whether
    /// the session will be listed anywhere (device info without a subject is refused, not
    /// dropped: the caller meant it to be shown).
    pub fn from_headers(
        headers: DeviceHeaders<'_>,
        has_subject: bool,
    ) -> Result<Option<Self>, Error> {
        if headers.label.is_none() && headers.agent.is_none() && headers.ip.is_none() {
            return Ok(None);
        }
        if !has_subject {
            return Err(Error::InvalidDevice(NO_SUBJECT));
        }
        let label = headers
            .label
            .map(|text| checked_text(text, MAX_LABEL_BYTES, BAD_LABEL))
            .transpose()?;
        let agent = headers
            .agent
            .map(|text| checked_text(text, MAX_AGENT_BYTES, BAD_AGENT))
            .transpose()?;
        let ip = headers
            .ip
            .map(|text| {
                let decoded = String::from_utf8(percent_decode_lenient(text)).ok();
                decoded
                    .and_then(|text| text.parse::<IpAddr>().ok())
                    .ok_or(Error::InvalidDevice(BAD_IP))
            })
            .transpose()?;
        Ok(Some(Self { label, agent, ip }))
    }

    /// `len | label | len (2, big-endian) | agent | 0, 4 or 6 | address`: compact, because the
    /// sealed form must fit a KV key's metadata beside the entry's other fields.
    pub fn to_bytes(&self) -> Vec<u8> {
        let label = self.label.as_deref().unwrap_or_default().as_bytes();
        let agent = self.agent.as_deref().unwrap_or_default().as_bytes();
        let mut out = Vec::with_capacity(4 + label.len() + agent.len() + 16);
        out.push(label.len() as u8);
        out.extend_from_slice(label);
        out.extend_from_slice(&(agent.len() as u16).to_be_bytes());
        out.extend_from_slice(agent);
        match self.ip {
            None => out.push(0),
            Some(IpAddr::V4(ip)) => {
                out.push(4);
                out.extend_from_slice(&ip.octets());
            }
            Some(IpAddr::V6(ip)) => {
                out.push(6);
                out.extend_from_slice(&ip.octets());
            }
        }
        out
    }

    /// Reads what [`Device::to_bytes`] wrote; `None` for anything else.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let (&label_len, rest) = bytes.split_first()?;
        let (label, rest) = rest.split_at_checked(usize::from(label_len))?;
        let (agent_len, rest) = rest.split_at_checked(2)?;
        let agent_len = u16::from_be_bytes([agent_len[0], agent_len[1]]);
        let (agent, rest) = rest.split_at_checked(usize::from(agent_len))?;
        let ip = match rest {
            [0] => None,
            [4, octets @ ..] => Some(IpAddr::from(<[u8; 4]>::try_from(octets).ok()?)),
            [6, octets @ ..] => Some(IpAddr::from(<[u8; 16]>::try_from(octets).ok()?)),
            _ => return None,
        };
        let text = |bytes: &[u8]| match bytes {
            [] => Some(None),
            bytes => String::from_utf8(bytes.to_vec()).ok().map(Some),
        };
        Some(Self {
            label: text(label)?,
            agent: text(agent)?,
            ip,
        })
    }
}

fn checked_text(encoded: &str, max: usize, why: &'static str) -> Result<String, Error> {
    let bytes = percent_decode_lenient(encoded);
    if bytes.is_empty() || bytes.len() > max {
        return Err(Error::InvalidDevice(why));
    }
    let text = String::from_utf8(bytes).map_err(|_| Error::InvalidDevice(why))?;
    if text.chars().any(char::is_control) {
        return Err(Error::InvalidDevice(why));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers<'a>(
        label: Option<&'a str>,
        agent: Option<&'a str>,
        ip: Option<&'a str>,
    ) -> DeviceHeaders<'a> {
        DeviceHeaders { label, agent, ip }
    }

    fn refused(given: DeviceHeaders<'_>) -> bool {
        matches!(
            Device::from_headers(given, true),
            Err(Error::InvalidDevice(_))
        )
    }

    #[test]
    fn device_info_is_decoded_checked_and_kept_canonical() {
        let device = Device::from_headers(
            headers(
                Some("Ada%E2%80%99s%20phone"),
                Some("Mozilla/5.0 (X11; Linux x86_64)"),
                Some("2001:DB8::1"),
            ),
            true,
        )
        .unwrap()
        .unwrap();
        assert_eq!(device.label.as_deref(), Some("Ada’s phone"));
        assert_eq!(
            device.agent.as_deref(),
            Some("Mozilla/5.0 (X11; Linux x86_64)")
        );
        assert_eq!(device.ip.unwrap().to_string(), "2001:db8::1");
        assert_eq!(
            Device::from_headers(headers(None, None, None), false).unwrap(),
            None
        );
        let v4 = Device::from_headers(headers(None, None, Some("192.0.2.7")), true).unwrap();
        assert_eq!(v4.unwrap().ip.unwrap().to_string(), "192.0.2.7");
        assert!(Device::from_headers(headers(Some(&"x".repeat(128)), None, None), true).is_ok());
        assert!(Device::from_headers(headers(None, Some(&"x".repeat(512)), None), true).is_ok());
    }

    #[test]
    fn malformed_or_subjectless_device_info_is_refused() {
        assert!(matches!(
            Device::from_headers(headers(Some("phone"), None, None), false),
            Err(Error::InvalidDevice(NO_SUBJECT))
        ));
        for bad in [
            headers(Some(""), None, None),
            headers(Some(&"x".repeat(129)), None, None),
            headers(Some("tab%09here"), None, None),
            headers(Some("%FF%FE"), None, None),
            headers(None, Some(&"x".repeat(513)), None),
            headers(None, Some("line%0Abreak"), None),
            headers(None, None, Some("999.1.1.1")),
            headers(None, None, Some("01.1.1.1")),
            headers(None, None, Some("fe80::1%eth0")),
            headers(None, None, Some("example.com")),
            headers(None, None, Some("")),
        ] {
            assert!(refused(bad), "{bad:?}");
        }
    }

    #[test]
    fn the_stored_form_round_trips_and_fits_its_bound() {
        let full = Device {
            label: Some("é".repeat(64)),
            agent: Some("a".repeat(512)),
            ip: "ffff::ffff".parse().ok(),
        };
        assert_eq!(full.to_bytes().len(), MAX_ENCODED_BYTES);
        for device in [
            full,
            Device::default(),
            Device {
                label: Some("phone".into()),
                agent: None,
                ip: "10.0.0.1".parse().ok(),
            },
        ] {
            assert_eq!(Device::from_bytes(&device.to_bytes()), Some(device));
        }
        assert_eq!(Device::from_bytes(&[]), None);
        assert_eq!(Device::from_bytes(&[0, 0, 0, 4, 1]), None);
        assert_eq!(Device::from_bytes(&[5, b'a']), None);
    }
}
