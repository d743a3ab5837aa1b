//! The codec ids of the batch attributes, the topic `compression.type`
//! policy, per-codec levels and the API versions that allow zstd.

use std::fmt;
use std::ops::RangeInclusive;

use super::CompressionError;
use crate::record::ATTR_CODEC_MASK;

/// A batch's compression codec: attributes bits 0-2.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Codec {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Codec {
    pub const ALL: [Codec; 5] = [
        Codec::None,
        Codec::Gzip,
        Codec::Snappy,
        Codec::Lz4,
        Codec::Zstd,
    ];

    /// The codec of a v2 batch's attributes; ids 5-7 are
    /// [`CompressionError::UnknownCodec`] (CORRUPT_MESSAGE, as Kafka answers).
    pub fn from_attributes(attributes: i16) -> Result<Codec, CompressionError> {
        Codec::from_id((attributes & ATTR_CODEC_MASK) as u8)
    }

    pub fn from_id(id: u8) -> Result<Codec, CompressionError> {
        match id {
            0 => Ok(Codec::None),
            1 => Ok(Codec::Gzip),
            2 => Ok(Codec::Snappy),
            3 => Ok(Codec::Lz4),
            4 => Ok(Codec::Zstd),
            other => Err(CompressionError::UnknownCodec(other)),
        }
    }

    /// The id stored in attributes bits 0-2.
    pub fn id(self) -> u8 {
        self as u8
    }

    /// `attributes` with its codec bits replaced by this codec's.
    pub fn apply_to(self, attributes: i16) -> i16 {
        (attributes & !ATTR_CODEC_MASK) | i16::from(self.id())
    }

    /// A codec by the name clients and topics use: `none` / `uncompressed`,
    /// `gzip`, `snappy`, `lz4`, `zstd`. `producer` is not a codec: see
    /// [`TopicCompression::parse`].
    pub fn from_name(name: &str) -> Option<Codec> {
        match name {
            "none" | "uncompressed" => Some(Codec::None),
            "gzip" => Some(Codec::Gzip),
            "snappy" => Some(Codec::Snappy),
            "lz4" => Some(Codec::Lz4),
            "zstd" => Some(Codec::Zstd),
            _ => None,
        }
    }

    /// The topic config holding this codec's level, if it has one.
    pub fn level_config_key(self) -> Option<&'static str> {
        match self {
            Codec::Gzip => Some("compression.gzip.level"),
            Codec::Lz4 => Some("compression.lz4.level"),
            Codec::Zstd => Some("compression.zstd.level"),
            Codec::None | Codec::Snappy => None,
        }
    }

    /// The levels Kafka accepts for this codec's level config (KIP-390).
    /// gzip also accepts -1, zlib's default (6).
    pub fn level_range(self) -> Option<RangeInclusive<i32>> {
        match self {
            Codec::Gzip => Some(1..=9),
            Codec::Lz4 => Some(1..=17),
            Codec::Zstd => Some(-131_072..=22),
            Codec::None | Codec::Snappy => None,
        }
    }

    /// Kafka's default level for this codec, used when the topic sets none.
    pub fn default_level(self) -> Option<i32> {
        match self {
            Codec::Gzip => Some(6),
            Codec::Lz4 => Some(9),
            Codec::Zstd => Some(3),
            Codec::None | Codec::Snappy => None,
        }
    }

    /// Whether `level` is a legal value of this codec's level config.
    pub fn is_valid_level(self, level: i32) -> bool {
        match self.level_range() {
            Some(range) => range.contains(&level) || (self == Codec::Gzip && level == -1),
            None => false,
        }
    }
}

impl fmt::Display for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Codec::None => "none",
            Codec::Gzip => "gzip",
            Codec::Snappy => "snappy",
            Codec::Lz4 => "lz4",
            Codec::Zstd => "zstd",
        })
    }
}

/// A topic's `compression.type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum TopicCompression {
    /// Store every batch exactly as the producer sent it (the default).
    #[default]
    Producer,
    /// Rebuild batches of any other codec in this one (`uncompressed` is
    /// `Codec(Codec::None)`).
    Codec(Codec),
}

impl TopicCompression {
    /// Parses a `compression.type` value: `producer`, `uncompressed`, `gzip`,
    /// `snappy`, `lz4` or `zstd` (Kafka's topic names; `none` is refused
    /// here as Kafka refuses it for topics).
    pub fn parse(value: &str) -> Option<TopicCompression> {
        match value {
            "producer" => Some(TopicCompression::Producer),
            "none" => None,
            other => Codec::from_name(other).map(TopicCompression::Codec),
        }
    }

    /// The codec a batch sent in `codec` is stored in.
    pub fn stored_codec(self, codec: Codec) -> Codec {
        match self {
            TopicCompression::Producer => codec,
            TopicCompression::Codec(target) => target,
        }
    }
}

/// Per-codec levels of one topic (`compression.<codec>.level`); `None`
/// means the codec's default.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Levels {
    pub gzip: Option<i32>,
    pub lz4: Option<i32>,
    pub zstd: Option<i32>,
}

impl Levels {
    /// The configured level for `codec`, if any.
    pub fn for_codec(&self, codec: Codec) -> Option<i32> {
        match codec {
            Codec::Gzip => self.gzip,
            Codec::Lz4 => self.lz4,
            Codec::Zstd => self.zstd,
            Codec::None | Codec::Snappy => None,
        }
    }
}

/// The first Produce version that may carry zstd batches (KIP-110).
pub const PRODUCE_ZSTD_VERSION_MIN: i16 = 7;
/// The first Fetch version that may receive zstd batches (KIP-110).
pub const FETCH_ZSTD_VERSION_MIN: i16 = 10;

/// A Produce of `codec` at `api_version`: zstd before v7 is
/// UNSUPPORTED_COMPRESSION_TYPE, as Kafka answers.
pub fn check_produce_version(codec: Codec, api_version: i16) -> Result<(), CompressionError> {
    if codec == Codec::Zstd && api_version < PRODUCE_ZSTD_VERSION_MIN {
        return Err(CompressionError::Unsupported { codec, api_version });
    }
    Ok(())
}

/// A Fetch at `api_version` that would return `codec` batches: zstd before
/// v10 is UNSUPPORTED_COMPRESSION_TYPE, as Kafka answers.
pub fn check_fetch_version(codec: Codec, api_version: i16) -> Result<(), CompressionError> {
    if codec == Codec::Zstd && api_version < FETCH_ZSTD_VERSION_MIN {
        return Err(CompressionError::Unsupported { codec, api_version });
    }
    Ok(())
}
