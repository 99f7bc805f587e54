//! Handler names as logs, spans and DLQ messages show them.

/// A handler's name for logs, spans and DLQ messages: its type's path, with closures named after the
/// function they are written in (`my_service::main::{{closure}}` becomes `my_service::main`).
///
/// A typed subscription adds the event type it is for (`my_service::Billing[OrderCreated]`), so one
/// type handling two events, or two closures in one function that handle different event types, log
/// under different names. Two closures in one function for the same event type share a name.
///
/// ```
/// fn name_of<T>(_: &T) -> String { kafka_event_bus::bus::handler_name::<T>() }
/// let handler = |_: u8| ();
/// assert!(!name_of(&handler).contains("{{closure}}"));
/// assert!(name_of(&handler).ends_with("main") || name_of(&handler).contains("rust_out"));
/// ```
pub fn handler_name<T: ?Sized>() -> String {
    let full = std::any::type_name::<T>();
    let trimmed = full.split("::{{closure}}").next().unwrap_or(full);
    trimmed.to_owned()
}

/// The name of `T` subscribed to `event_type`: `path::Type[EventType]`.
pub(super) fn subscription_name<T: ?Sized>(event_type: &str) -> String {
    format!("{}[{event_type}]", handler_name::<T>())
}

#[cfg(test)]
mod tests {
    use std::{
        future::Future,
        sync::{Arc, Mutex},
        time::Duration,
    };

    use crate::bus::{
        ErasedHandler, Error, EventBus, Handler, HandlerResult, PublishOptions, Subscriber, SubscriptionId,
        Target,
    };
    use crate::event::{AnyEvent, DomainEvent, Event, EventType};

    #[derive(serde::Serialize, serde::Deserialize)]
    struct OrderCreated {}
    impl Event for OrderCreated {
        const EVENT_TYPE: &'static str = "OrderCreated";
        const AGGREGATE_TYPE: &'static str = "Order";
    }
    #[derive(serde::Serialize, serde::Deserialize)]
    struct OrderShipped {}
    impl Event for OrderShipped {
        const EVENT_TYPE: &'static str = "OrderShipped";
        const AGGREGATE_TYPE: &'static str = "Order";
    }

    struct Billing;
    impl Handler<OrderCreated> for Billing {
        async fn handle(&self, _: Arc<DomainEvent<OrderCreated>>) -> HandlerResult {
            Ok(())
        }
    }
    impl Handler<OrderShipped> for Billing {
        async fn handle(&self, _: Arc<DomainEvent<OrderShipped>>) -> HandlerResult {
            Ok(())
        }
    }

    struct Projection;
    impl Subscriber for Projection {
        fn subscribed_to(&self) -> Vec<EventType> {
            vec![EventType::of::<OrderCreated>(), EventType::of::<OrderShipped>()]
        }
        async fn handle(&self, _: AnyEvent) -> HandlerResult {
            Ok(())
        }
    }

    /// A bus that only records the names of the handlers it is given.
    #[derive(Default)]
    struct Names(Mutex<Vec<String>>);

    impl EventBus for Names {
        fn publish(&self, _: Vec<AnyEvent>) -> impl Future<Output = Result<(), Error>> + Send {
            std::future::ready(Ok(()))
        }
        fn publish_with(
            &self,
            _: Vec<AnyEvent>,
            _: PublishOptions,
        ) -> impl Future<Output = Result<(), Error>> + Send {
            std::future::ready(Ok(()))
        }
        fn publish_background(&self, _: Vec<AnyEvent>) -> impl Future<Output = Result<(), Error>> + Send {
            std::future::ready(Ok(()))
        }
        fn add_handler(&self, _: Target, handler: ErasedHandler) -> Result<SubscriptionId, Error> {
            let mut names = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            names.push(handler.name().to_owned());
            Ok(SubscriptionId(0))
        }
        fn unsubscribe(&self, _: SubscriptionId) -> bool {
            false
        }
        fn shutdown(&self, _: Duration) -> impl Future<Output = Result<(), Error>> + Send {
            std::future::ready(Ok(()))
        }
    }

    #[test]
    fn one_type_handling_two_events_logs_under_two_names() -> Result<(), Error> {
        let bus = Names::default();
        let billing = Arc::new(Billing);
        bus.subscribe_handler::<OrderCreated, _>(billing.clone())?;
        bus.subscribe_handler::<OrderShipped, _>(billing)?;
        bus.subscribe(|_: Arc<DomainEvent<OrderCreated>>| async { Ok(()) })?;
        bus.subscribe(|_: Arc<DomainEvent<OrderShipped>>| async { Ok(()) })?;
        bus.subscribe_all(Arc::new(Projection))?;
        let names = bus
            .0
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let here = module_path!();
        assert_eq!(
            names,
            [
                format!("{here}::Billing[OrderCreated]"),
                format!("{here}::Billing[OrderShipped]"),
                format!("{here}::one_type_handling_two_events_logs_under_two_names[OrderCreated]"),
                format!("{here}::one_type_handling_two_events_logs_under_two_names[OrderShipped]"),
                format!("{here}::Projection[OrderCreated]"),
                format!("{here}::Projection[OrderShipped]"),
            ]
        );
        Ok(())
    }
}
