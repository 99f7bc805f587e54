//! Everything that talks to brokers over sockets (feature `client`).

pub mod producer;
