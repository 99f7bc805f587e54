//! Everything that talks to brokers over sockets (feature `client`).

pub mod connection;
pub mod group;
