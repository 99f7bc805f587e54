//! Prints the TLS crypto provider this build picks on this machine, and why the others were passed over.

use kafka_event_bus::client::connection::TlsProvider;

fn main() {
    for provider in TlsProvider::PREFERENCE {
        match provider.unusable() {
            None => println!("{provider}: usable"),
            Some(reason) => println!("{provider}: unusable ({reason})"),
        }
    }
    match TlsProvider::detect() {
        Ok(provider) => println!("tls provider: {provider}"),
        Err(e) => {
            println!("tls provider: none ({e})");
            std::process::exit(1);
        }
    }
}
