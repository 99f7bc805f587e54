//! A background publish that was created before a shutdown but first polled after it: it reports the
//! shutdown instead of accepting events no one will send.

use std::time::Duration;

use kafka_event_bus::bus::{Error, EventBus};
use uuid::Uuid;

use crate::{
    bus::config,
    spec_bugs::{order, start},
    support::unique,
    trial,
};

pub(crate) fn trials(trials: &mut crate::Trials<'_>) {
    trials.push(trial(
        "a_background_publish_polled_after_shutdown_is_refused",
        |ctx| async move {
            let prefix = unique("bg-late");
            let bus = start(config(ctx, &prefix, &prefix), true).await;
            let event = order(Uuid::new_v4(), 1, "late").into_any().unwrap();
            // Created (the connection checked) while the bus runs; polled once it has shut down.
            let publishing = bus.publish_background(vec![event]);
            bus.shutdown(Duration::from_secs(10)).await.unwrap();
            let result = publishing.await;
            assert!(matches!(result, Err(Error::ShutDown)), "{result:?}");
            assert_eq!(bus.background_task_count(), 0);
        },
    ));
}
