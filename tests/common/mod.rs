//! The test events shared by the integration tests: the declarations of
//! `tests/fixtures/eventsource_py/generate.py`, so a Rust test and the golden vectors speak of the same
//! events. Each test crate uses some of them.

#![allow(dead_code)]

use serde::{Deserialize, Serialize};

use kafka_event_bus::event::{Event, Metadata};

/// An order was placed (the user guide's event).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct OrderCreated {
    /// Who placed it.
    pub(crate) customer_id: String,
}

impl Event for OrderCreated {
    const EVENT_TYPE: &'static str = "OrderCreated";
    const AGGREGATE_TYPE: &'static str = "Order";
}

/// An order left the warehouse.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct OrderShipped {
    /// The carrier's number.
    pub(crate) tracking_number: String,
}

impl Event for OrderShipped {
    const EVENT_TYPE: &'static str = "OrderShipped";
    const AGGREGATE_TYPE: &'static str = "Order";
}

/// An item was added to a cart: every JSON shape a payload field takes (integer, float, list, null,
/// object).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ItemAdded {
    /// Stock keeping unit.
    pub(crate) sku: String,
    /// How many.
    pub(crate) quantity: i64,
    /// Price of one.
    pub(crate) unit_price: f64,
    /// Free-form labels.
    pub(crate) tags: Vec<String>,
    /// An optional note (`null` when absent).
    pub(crate) note: Option<String>,
    /// Anything else, as JSON, in its order (`serde_json::Map` is sorted unless some crate turns on
    /// `preserve_order`).
    pub(crate) attributes: Metadata,
}

impl Event for ItemAdded {
    const EVENT_TYPE: &'static str = "ItemAdded";
    const AGGREGATE_TYPE: &'static str = "Cart";
}
