//! The versions a broker speaks, and the choice of one per request.

use std::collections::BTreeMap;

use kafka_protocol::{
    messages::{ApiKey, ApiVersionsResponse},
    protocol::VersionRange,
};

use super::{ApiRequest, Error};

/// The API versions one broker advertised in its ApiVersions response.
///
/// Negotiated once per connection and consulted on every send: each request goes out at the highest
/// version both this client ([`ApiRequest::VERSIONS`]) and the broker support.
///
/// # Example
///
/// ```
/// use kafka_event_bus::protocol::{ApiKey, ApiVersionTable, VersionRange};
/// use kafka_protocol::messages::MetadataRequest;
///
/// let table = ApiVersionTable::from_ranges([(ApiKey::Metadata, VersionRange { min: 0, max: 9 })]);
/// assert_eq!(table.negotiate::<MetadataRequest>().unwrap(), 9);
/// assert!(ApiVersionTable::default().negotiate::<MetadataRequest>().is_err());
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ApiVersionTable {
    ranges: BTreeMap<i16, VersionRange>,
}

impl ApiVersionTable {
    /// A table from explicit ranges (for tests, or a broker known in advance).
    pub fn from_ranges(ranges: impl IntoIterator<Item = (ApiKey, VersionRange)>) -> Self {
        Self {
            ranges: ranges.into_iter().map(|(k, r)| (k as i16, r)).collect(),
        }
    }

    /// The table a broker advertised. API keys this crate does not know are kept too (they cost
    /// nothing and show up in [`iter`](Self::iter)).
    pub fn from_response(response: &ApiVersionsResponse) -> Self {
        Self {
            ranges: response
                .api_keys
                .iter()
                .map(|k| {
                    (
                        k.api_key,
                        VersionRange {
                            min: k.min_version,
                            max: k.max_version,
                        },
                    )
                })
                .collect(),
        }
    }

    /// The range the broker advertised for `api`, if any.
    pub fn broker_range(&self, api: ApiKey) -> Option<VersionRange> {
        self.ranges.get(&(api as i16)).copied()
    }

    /// The version to send `R` at: the highest one both sides support.
    ///
    /// # Errors
    ///
    /// [`Error::UnsupportedVersion`] when the broker does not advertise the API or the ranges do not
    /// overlap.
    pub fn negotiate<R: ApiRequest>(&self) -> Result<i16, Error> {
        negotiate(R::KEY, R::VERSIONS, self.broker_range(R::KEY))
    }

    /// Every advertised API as `(key, range)`, in key order; `key` is the raw API key.
    pub fn iter(&self) -> impl Iterator<Item = (i16, VersionRange)> + '_ {
        self.ranges.iter().map(|(k, r)| (*k, *r))
    }
}

/// The highest version in `client ∩ broker`.
pub(crate) fn negotiate(
    api: ApiKey,
    client: VersionRange,
    broker: Option<VersionRange>,
) -> Result<i16, Error> {
    match broker.map(|b| client.intersect(&b)) {
        Some(common) if !common.is_empty() => Ok(common.max),
        _ => Err(Error::UnsupportedVersion { api, client, broker }),
    }
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::{CreateTopicsRequest, FetchRequest, api_versions_response::ApiVersion};

    use super::*;

    fn range(min: i16, max: i16) -> VersionRange {
        VersionRange { min, max }
    }

    #[test]
    fn picks_the_highest_common_version() {
        // Tansu advertises Fetch 0..=17; this client stops at 12.
        let table = ApiVersionTable::from_ranges([(ApiKey::Fetch, range(0, 17))]);
        assert_eq!(
            table.negotiate::<FetchRequest>().unwrap(),
            FetchRequest::VERSIONS.max
        );
        // An old broker caps it.
        let table = ApiVersionTable::from_ranges([(ApiKey::Fetch, range(0, 7))]);
        assert_eq!(table.negotiate::<FetchRequest>().unwrap(), 7);
    }

    #[test]
    fn disjoint_or_missing_ranges_are_errors() {
        let table = ApiVersionTable::from_ranges([(ApiKey::CreateTopics, range(0, 1))]);
        let err = table.negotiate::<CreateTopicsRequest>().unwrap_err();
        assert!(matches!(
            err,
            Error::UnsupportedVersion {
                api: ApiKey::CreateTopics,
                broker: Some(_),
                ..
            }
        ));
        assert!(err.to_string().contains("speaks 0..1"), "{err}");
        let err = ApiVersionTable::default()
            .negotiate::<CreateTopicsRequest>()
            .unwrap_err();
        assert!(err.to_string().contains("does not advertise"), "{err}");
    }

    #[test]
    fn reads_an_api_versions_response() {
        let response = ApiVersionsResponse::default().with_api_keys(vec![
            ApiVersion::default()
                .with_api_key(3)
                .with_min_version(0)
                .with_max_version(12),
            ApiVersion::default()
                .with_api_key(9999)
                .with_min_version(0)
                .with_max_version(1),
        ]);
        let table = ApiVersionTable::from_response(&response);
        assert_eq!(table.broker_range(ApiKey::Metadata), Some(range(0, 12)));
        assert_eq!(table.iter().count(), 2);
    }
}
