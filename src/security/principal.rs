//! The principal of an SSL connection that showed a client certificate, as
//! Kafka's DefaultKafkaPrincipalBuilder makes it: `User:` and the
//! certificate's subject DN in RFC 2253 form (Java's
//! `X500Principal.getName()`: the last RDN first, known attribute types by
//! keyword, others as `OID=#hex`, special characters escaped). The DER walk
//! is our own, bounded by the certificate's bytes; rustls has already
//! verified the certificate against the CA.

/// Why a certificate's subject could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("certificate subject unreadable: {0}")]
pub struct SubjectError(&'static str);

/// Longest subject DN kept (an ACL principal is at most this long anyway).
pub const DN_BYTES_MAX: usize = super::acl::NAME_BYTES_MAX;

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;
const VERSION: u8 = 0xa0;

/// `User:` + the subject DN of the DER certificate `der`.
pub fn ssl_principal(der: &[u8]) -> Result<String, SubjectError> {
    Ok(format!("User:{}", subject_dn(der)?))
}

/// The subject DN of a DER certificate, in RFC 2253 form.
pub fn subject_dn(der: &[u8]) -> Result<String, SubjectError> {
    let (certificate, _) = expect(der, SEQUENCE, "certificate")?;
    let (mut tbs, _) = expect(certificate, SEQUENCE, "tbsCertificate")?;
    if tbs.first() == Some(&VERSION) {
        tbs = tlv(tbs)?.2;
    }
    // serialNumber, signature, issuer, validity, then the subject.
    for _ in 0..4 {
        tbs = tlv(tbs)?.2;
    }
    let (mut rdns, _) = expect(tbs, SEQUENCE, "subject")?;
    let mut parts = Vec::new();
    while !rdns.is_empty() {
        let (mut set, rest) = expect(rdns, SET, "relative distinguished name")?;
        rdns = rest;
        let mut values = Vec::new();
        while !set.is_empty() {
            let (attribute, rest) = expect(set, SEQUENCE, "attribute")?;
            set = rest;
            values.push(attribute_text(attribute)?);
        }
        parts.push(values.join("+"));
    }
    parts.reverse();
    let dn = parts.join(",");
    if dn.len() > DN_BYTES_MAX {
        return Err(SubjectError("longer than a principal may be"));
    }
    Ok(dn)
}

/// One `type=value` of an RDN.
fn attribute_text(attribute: &[u8]) -> Result<String, SubjectError> {
    let (oid, value_tlv) = expect(attribute, OID, "attribute type")?;
    let (tag, value, rest) = tlv(value_tlv)?;
    if !rest.is_empty() {
        return Err(SubjectError("trailing bytes in an attribute"));
    }
    let oid = dotted(oid)?;
    let keyword = match oid.as_str() {
        "2.5.4.3" => Some("CN"),
        "2.5.4.6" => Some("C"),
        "2.5.4.7" => Some("L"),
        "2.5.4.8" => Some("ST"),
        "2.5.4.9" => Some("STREET"),
        "2.5.4.10" => Some("O"),
        "2.5.4.11" => Some("OU"),
        "0.9.2342.19200300.100.1.1" => Some("UID"),
        "0.9.2342.19200300.100.1.25" => Some("DC"),
        _ => None,
    };
    match (keyword, text(tag, value)) {
        (Some(k), Some(v)) => Ok(format!("{k}={}", escape(&v))),
        // Java writes other types (and non-string values) as the OID and
        // the value's DER encoding in hex.
        _ => {
            let hex: String = value_tlv.iter().map(|b| format!("{b:02x}")).collect();
            Ok(format!("{oid}=#{hex}"))
        }
    }
}

/// A DirectoryString's text, for the string types certificates use.
fn text(tag: u8, value: &[u8]) -> Option<String> {
    match tag {
        // UTF8String, PrintableString, IA5String, NumericString, VisibleString
        0x0c | 0x13 | 0x16 | 0x12 | 0x1a => String::from_utf8(value.to_vec()).ok(),
        // TeletexString, read as Latin-1 as Java does.
        0x14 => Some(value.iter().map(|&b| char::from(b)).collect()),
        // BMPString: UTF-16 big-endian.
        0x1e if value.len().is_multiple_of(2) => {
            let units: Vec<u16> = value
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            String::from_utf16(&units).ok()
        }
        _ => None,
    }
}

/// RFC 2253's escapes, as `X500Principal.getName()` writes them.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && (c == '#' || c == ' '))
            || (i == last && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// An OID's dotted form.
fn dotted(oid: &[u8]) -> Result<String, SubjectError> {
    let bad = SubjectError("malformed object identifier");
    let (&first, rest) = oid.split_first().ok_or(bad.clone())?;
    let mut arcs = vec![u64::from(first / 40).min(2), 0];
    arcs[1] = u64::from(first) - arcs[0] * 40;
    let mut arc: u64 = 0;
    for &b in rest {
        if arc > u64::MAX >> 7 {
            return Err(bad);
        }
        arc = arc << 7 | u64::from(b & 0x7f);
        if b & 0x80 == 0 {
            arcs.push(arc);
            arc = 0;
        }
    }
    if oid.last().is_some_and(|b| b & 0x80 != 0) {
        return Err(bad);
    }
    Ok(arcs
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join("."))
}

/// The first TLV of `buf` with tag `tag`: its content and what follows.
fn expect<'a>(
    buf: &'a [u8],
    tag: u8,
    what: &'static str,
) -> Result<(&'a [u8], &'a [u8]), SubjectError> {
    let (t, content, rest) = tlv(buf)?;
    if t != tag {
        return Err(SubjectError(what));
    }
    Ok((content, rest))
}

/// One DER tag-length-value: (tag, content, rest). Single-byte tags and
/// definite lengths of up to 4 bytes, all within `buf`.
fn tlv(buf: &[u8]) -> Result<(u8, &[u8], &[u8]), SubjectError> {
    let short = SubjectError("truncated DER");
    let (&tag, buf) = buf.split_first().ok_or(short.clone())?;
    if tag & 0x1f == 0x1f {
        return Err(SubjectError("multi-byte DER tag"));
    }
    let (&first, mut buf) = buf.split_first().ok_or(short.clone())?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || buf.len() < n {
            return Err(SubjectError("unsupported DER length"));
        }
        let len = buf[..n]
            .iter()
            .fold(0usize, |len, &b| len << 8 | usize::from(b));
        buf = &buf[n..];
        len
    };
    if buf.len() < len {
        return Err(short);
    }
    let (content, rest) = buf.split_at(len);
    Ok((tag, content, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn certificate(dn: &[(rcgen::DnType, &str)]) -> Vec<u8> {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        for (t, v) in dn {
            params.distinguished_name.push(t.clone(), *v);
        }
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn the_subject_reads_as_java_writes_it() {
        use rcgen::DnType;
        let der = certificate(&[
            (DnType::CountryName, "US"),
            (DnType::OrganizationName, "Example, Inc."),
            (DnType::OrganizationalUnitName, "ops"),
            (DnType::CommonName, "alice"),
        ]);
        assert_eq!(
            ssl_principal(&der).unwrap(),
            r"User:CN=alice,OU=ops,O=Example\, Inc.,C=US"
        );
    }

    #[test]
    fn other_attribute_types_are_hex_and_specials_escaped() {
        use rcgen::DnType;
        let der = certificate(&[
            (
                DnType::CustomDnType(vec![1, 2, 840, 113549, 1, 9, 1]),
                "a@b",
            ),
            (DnType::CommonName, " #x+y "),
        ]);
        let dn = subject_dn(&der).unwrap();
        let (cn, email) = dn.split_once(',').unwrap();
        assert_eq!(cn, r"CN=\ #x\+y\ ");
        assert!(email.starts_with("1.2.840.113549.1.9.1=#"), "{email}");
        assert!(email.ends_with("614062"), "{email}: the DER of \"a@b\"");
    }

    #[test]
    fn malformed_certificates_are_refused_not_misread() {
        let der = certificate(&[(rcgen::DnType::CommonName, "alice")]);
        for cut in [0, 1, 2, 10, der.len() / 2] {
            assert!(subject_dn(&der[..cut]).is_err(), "cut at {cut}");
        }
        assert!(subject_dn(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]).is_err());
        assert!(subject_dn(&[0x1f, 0x01, 0x00]).is_err());
    }
}
