//! Admin operations: create, ensure, delete and describe topics.

use kafka_protocol::{
    messages::{
        ApiKey, CreateTopicsRequest, DeleteTopicsRequest,
        create_topics_request::{CreatableTopic, CreatableTopicConfig},
        delete_topics_request::DeleteTopicState,
    },
    protocol::StrBytes,
};
use snafu::ResultExt;
use tracing::info;

use super::{CONVERGE_POLL, Cluster, Error, error::ConnectionSnafu, topic_name};
use crate::protocol::{ResponseError, ServerError};

/// A topic to create.
///
/// # Example
///
/// ```
/// use kafka_event_bus::client::NewTopic;
///
/// let topic = NewTopic::new("orders.stream", 6, 3).with_config("retention.ms", "604800000");
/// assert_eq!(topic.num_partitions, 6);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NewTopic {
    /// The topic's name.
    pub name: String,
    /// How many partitions it gets.
    pub num_partitions: i32,
    /// How many replicas each partition gets.
    pub replication_factor: i16,
    /// Topic configs (`retention.ms`, `cleanup.policy`, ...).
    pub configs: Vec<(String, String)>,
}

impl NewTopic {
    /// A topic with `num_partitions` partitions of `replication_factor` replicas.
    pub fn new(name: impl Into<String>, num_partitions: i32, replication_factor: i16) -> Self {
        Self {
            name: name.into(),
            num_partitions,
            replication_factor,
            configs: Vec::new(),
        }
    }

    /// Adds a topic config.
    pub fn with_config(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.configs.push((key.into(), value.into()));
        self
    }
}

/// What happened to one topic of a create or ensure call.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TopicCreation {
    /// The topic was created by this call.
    Created {
        /// The topic.
        name: String,
    },
    /// The topic existed already and was left alone.
    AlreadyExists {
        /// The topic.
        name: String,
    },
}

impl TopicCreation {
    /// The topic's name.
    pub fn name(&self) -> &str {
        match self {
            TopicCreation::Created { name } | TopicCreation::AlreadyExists { name } => name,
        }
    }
}

impl Cluster {
    /// Creates `topics`. A topic that already exists is reported as
    /// [`TopicCreation::AlreadyExists`], not as an error.
    ///
    /// # Errors
    ///
    /// [`Error::Server`] naming the first topic the broker refused (invalid partition count, policy...),
    /// or a connection error.
    pub async fn create_topics(&self, topics: &[NewTopic]) -> Result<Vec<TopicCreation>, Error> {
        let timeout_ms = i32::try_from(self.config().request_timeout.as_millis()).unwrap_or(i32::MAX);
        let request = CreateTopicsRequest::default()
            .with_timeout_ms(timeout_ms)
            .with_topics(
                topics
                    .iter()
                    .map(|t| {
                        CreatableTopic::default()
                            .with_name(topic_name(&t.name))
                            .with_num_partitions(t.num_partitions)
                            .with_replication_factor(t.replication_factor)
                            .with_configs(
                                t.configs
                                    .iter()
                                    .map(|(k, v)| {
                                        CreatableTopicConfig::default()
                                            .with_name(StrBytes::from_string(k.clone()))
                                            .with_value(Some(StrBytes::from_string(v.clone())))
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            );
        // Topic creation belongs to the controller; other brokers answer NOT_CONTROLLER (or forward it).
        let (broker, response) = match self.metadata().controller_id.map(|id| self.broker(id)) {
            Some(Ok(controller)) => {
                let response = controller.request(&request).await.context(ConnectionSnafu {
                    api: ApiKey::CreateTopics,
                })?;
                (controller.address().to_owned(), response)
            }
            _ => self.request_any(&request).await?,
        };
        let mut outcomes = Vec::with_capacity(response.topics.len());
        for result in response.topics {
            let name = result.name.0.to_string();
            match ServerError::from_code(result.error_code, result.error_message.as_deref()) {
                None => {
                    info!(topic = %name, %broker, "created topic");
                    outcomes.push(TopicCreation::Created { name });
                }
                Some(ServerError {
                    code: ResponseError::TopicAlreadyExists,
                    ..
                }) => outcomes.push(TopicCreation::AlreadyExists { name }),
                Some(source) => {
                    return Err(Error::Server {
                        api: ApiKey::CreateTopics,
                        broker,
                        topic: Some(name),
                        partition: None,
                        source,
                    });
                }
            }
        }
        Ok(outcomes)
    }

    /// Creates the topics that are missing and waits until every one of `topics` has a leader for each
    /// partition (so producing to it works at once). Existing topics are left alone, whatever their
    /// partition count, and reported as [`TopicCreation::AlreadyExists`].
    ///
    /// # Errors
    ///
    /// As [`create_topics`](Self::create_topics), plus [`Error::Timeout`] when the topics do not get
    /// leaders within the request timeout.
    pub async fn ensure_topics(&self, topics: &[NewTopic]) -> Result<Vec<TopicCreation>, Error> {
        let outcomes = self.create_topics(topics).await?;
        let names: Vec<&str> = topics.iter().map(|t| t.name.as_str()).collect();
        let timeout = self.config().request_timeout;
        let converge = async {
            loop {
                let metadata = self.refresh_topics(&names).await?;
                if names
                    .iter()
                    .all(|n| metadata.topics.get(*n).is_some_and(|t| t.is_ready()))
                {
                    return Ok::<_, Error>(());
                }
                tokio::time::sleep(CONVERGE_POLL).await;
            }
        };
        tokio::time::timeout(timeout, converge)
            .await
            .map_err(|_| Error::Timeout {
                what: format!("leaders for topics {names:?}"),
                timeout,
            })??;
        Ok(outcomes)
    }

    /// Deletes `topics`.
    ///
    /// # Errors
    ///
    /// [`Error::Server`] naming the first topic the broker refused to delete (UNKNOWN_TOPIC_OR_PARTITION
    /// for a topic that does not exist), or a connection error.
    pub async fn delete_topics(&self, topics: &[&str]) -> Result<(), Error> {
        let timeout_ms = i32::try_from(self.config().request_timeout.as_millis()).unwrap_or(i32::MAX);
        // v6 names topics in `topics` (to allow topic ids), older versions in `topic_names`.
        let build = |version: i16| {
            let request = DeleteTopicsRequest::default().with_timeout_ms(timeout_ms);
            if version >= 6 {
                request.with_topics(
                    topics
                        .iter()
                        .map(|t| DeleteTopicState::default().with_name(Some(topic_name(t))))
                        .collect(),
                )
            } else {
                request.with_topic_names(topics.iter().map(|t| topic_name(t)).collect())
            }
        };
        let (broker, response) = self.request_any_with(build).await?;
        for result in response.responses {
            let topic = result.name.map(|n| n.0.to_string());
            if let Some(source) = ServerError::from_code(result.error_code, result.error_message.as_deref()) {
                return Err(Error::Server {
                    api: ApiKey::DeleteTopics,
                    broker,
                    topic,
                    partition: None,
                    source,
                });
            }
        }
        info!(?topics, "deleted topics");
        self.refresh_topics(topics).await?;
        Ok(())
    }

    /// The partition indices of `topic`, in order (fresh from the broker).
    ///
    /// # Errors
    ///
    /// [`Error::UnknownTopic`] when the topic does not exist.
    pub async fn partitions(&self, topic: &str) -> Result<Vec<i32>, Error> {
        let metadata = self.refresh_topics(&[topic]).await?;
        let topic_metadata = metadata.topics.get(topic).ok_or_else(|| Error::UnknownTopic {
            topic: topic.to_owned(),
        })?;
        Ok(topic_metadata.partitions.iter().map(|p| p.partition).collect())
    }
}
