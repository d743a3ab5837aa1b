//! Deterministic built-in data: the same bytes on every machine and run, so
//! compression results are comparable.

/// SplitMix64: tiny, fast, and good enough for filler and dataset choices.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0), slightly biased, which is fine here.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    pub fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }

    pub fn fill(&mut self, out: &mut [u8]) {
        for chunk in out.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

const EVENTS: &[&str] = &[
    "page_view",
    "click",
    "add_to_cart",
    "checkout",
    "search",
    "login",
];
const PAGES: &[&str] = &[
    "/",
    "/products",
    "/products/item",
    "/cart",
    "/search",
    "/account",
];
const AGENTS: &[&str] = &[
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/124.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) Mobile/15E148",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0",
];
const LEVELS: &[&str] = &["INFO", "INFO", "INFO", "DEBUG", "WARN", "ERROR"];
const COMPONENTS: &[&str] = &["net", "shard", "storage", "fetch", "produce", "metadata"];
const WORDS: &[&str] = &[
    "lorem",
    "ipsum",
    "dolor",
    "sit",
    "amet",
    "consectetur",
    "adipiscing",
    "elit",
    "sed",
    "do",
    "eiusmod",
    "tempor",
    "incididunt",
    "ut",
    "labore",
    "et",
    "dolore",
    "magna",
    "aliqua",
];

/// Click-stream style JSON events, about 250 bytes each.
pub fn json_events(count: usize, seed: u64) -> Vec<Vec<u8>> {
    let mut rng = SplitMix64::new(seed);
    (0..count)
        .map(|i| {
            format!(
                r#"{{"ts":{},"user_id":"u{:06}","session":"{:016x}","event":"{}","page":"{}/{}","duration_ms":{},"user_agent":"{}"}}"#,
                1_714_000_000_000u64 + i as u64 * 37,
                rng.below(100_000),
                rng.next_u64(),
                rng.pick(EVENTS),
                rng.pick(PAGES),
                rng.below(10_000),
                rng.below(5_000),
                rng.pick(AGENTS),
            )
            .into_bytes()
        })
        .collect()
}

/// Service log lines, about 120 bytes each.
pub fn log_lines(count: usize, seed: u64) -> Vec<Vec<u8>> {
    let mut rng = SplitMix64::new(seed);
    (0..count)
        .map(|i| {
            let ms = i as u64 * 13;
            format!(
                "2024-05-01T12:{:02}:{:02}.{:03}Z {} [{}-{}] request handled path=/v1/{} status={} latency_us={}\n",
                (ms / 60_000) % 60,
                (ms / 1000) % 60,
                ms % 1000,
                rng.pick(LEVELS),
                rng.pick(COMPONENTS),
                rng.below(8),
                rng.pick(WORDS),
                [200, 200, 200, 204, 404, 500][rng.below(6) as usize],
                rng.below(100_000),
            )
            .into_bytes()
        })
        .collect()
}

/// Text from a 19-word vocabulary, 200 bytes each: the easy case.
pub fn repetitive_text(count: usize, seed: u64) -> Vec<Vec<u8>> {
    let mut rng = SplitMix64::new(seed);
    (0..count)
        .map(|_| {
            let mut s = String::with_capacity(220);
            while s.len() < 200 {
                s.push_str(rng.pick(WORDS));
                s.push(' ');
            }
            s.truncate(200);
            s.into_bytes()
        })
        .collect()
}

/// Incompressible bytes, 256 per message: the worst case.
pub fn random_bytes(count: usize, seed: u64) -> Vec<Vec<u8>> {
    let mut rng = SplitMix64::new(seed);
    (0..count)
        .map(|_| {
            let mut v = vec![0u8; 256];
            rng.fill(&mut v);
            v
        })
        .collect()
}

/// A user file as messages: its lines when it has short lines, otherwise
/// 1 KiB chunks.
pub fn from_file_bytes(bytes: &[u8], count_max: usize) -> Vec<Vec<u8>> {
    const LINE_BYTES_MAX: usize = 64 * 1024;
    let lines: Vec<&[u8]> = bytes
        .split_inclusive(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    let short_lines = lines.len() > 1 && lines.iter().all(|l| l.len() <= LINE_BYTES_MAX);
    let parts: Vec<&[u8]> = if short_lines {
        lines
    } else {
        bytes.chunks(1024).collect()
    };
    parts
        .into_iter()
        .take(count_max)
        .map(<[u8]>::to_vec)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datasets_are_deterministic() {
        assert_eq!(json_events(5, 1), json_events(5, 1));
        assert_eq!(log_lines(5, 1), log_lines(5, 1));
        assert_ne!(random_bytes(2, 1), random_bytes(2, 2));
        assert_eq!(repetitive_text(3, 9)[0].len(), 200);
    }

    #[test]
    fn file_splits_into_lines_or_chunks() {
        assert_eq!(from_file_bytes(b"a\nbb\nccc", 10).len(), 3);
        assert_eq!(from_file_bytes(&[0u8; 3000], 10).len(), 3);
        assert_eq!(from_file_bytes(b"a\nb\nc\n", 2).len(), 2);
    }
}
