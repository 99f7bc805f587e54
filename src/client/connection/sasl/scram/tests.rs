use super::*;

const NONCE: &str = "rOprNGfwEbeRWgbNEkqO";
const SERVER_FIRST: &str =
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";

#[test]
fn rfc7677_scram_sha256_vector() {
    let mut c = ScramClient::with_nonce(Mechanism::ScramSha256, "user", "pencil", NONCE);
    assert_eq!(c.client_first(), b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
    let client_final = c.handle_server_first(SERVER_FIRST.as_bytes()).unwrap();
    assert_eq!(
        String::from_utf8(client_final).unwrap(),
        "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
    );
    c.handle_server_final(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
        .unwrap();
    assert!(c.is_done());
}

/// The RFC 7677 exchange with SHA-512, computed independently with Python's standard library:
///
/// ```python
/// import hashlib, hmac, base64
/// cnonce = "rOprNGfwEbeRWgbNEkqO"; snonce = cnonce + "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
/// salt = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ=="); H = hashlib.sha512
/// salted = hashlib.pbkdf2_hmac("sha512", b"pencil", salt, 4096)
/// ck = hmac.new(salted, b"Client Key", H).digest(); sk = H(ck).digest()
/// final_wo = f"c=biws,r={snonce}"
/// auth = f"n=user,r={cnonce},r={snonce},s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,{final_wo}".encode()
/// cs = hmac.new(sk, auth, H).digest(); proof = bytes(a ^ b for a, b in zip(ck, cs))
/// ss = hmac.new(hmac.new(salted, b"Server Key", H).digest(), auth, H).digest()
/// print(final_wo + ",p=" + base64.b64encode(proof).decode()); print("v=" + base64.b64encode(ss).decode())
/// ```
///
/// (The same script with sha256 reproduces the RFC 7677 values above.)
#[test]
fn scram_sha512_vector_computed_with_python() {
    let mut c = ScramClient::with_nonce(Mechanism::ScramSha512, "user", "pencil", NONCE);
    c.client_first();
    let client_final = c.handle_server_first(SERVER_FIRST.as_bytes()).unwrap();
    assert_eq!(
        String::from_utf8(client_final).unwrap(),
        "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
         p=gMGXRcevScNtxZ6/8lQYpGtnsNAc3mGcmNomv+xnoOMw+3R2xNJdMNnzMlTN8PPC6wdp6dybEmDYXYTxwnYPJQ=="
    );
    let mut generic = ScramClient::with_nonce(Mechanism::ScramSha512, "user", "pencil", NONCE);
    generic.client_first();
    assert!(matches!(
        generic.handle(SERVER_FIRST.as_bytes()).unwrap(),
        Step::Respond(_)
    ));
    let server_final =
        b"v=ZQnYEgWQMFmmsM8aQMF0nDDCy/AgCzkwk8CmMZYcMg0vSVlKDanekLtifDSeVGT4+5ZxXnJq199RVG2rR7N7Zw==";
    assert_eq!(generic.handle(server_final).unwrap(), Step::Done);
    c.handle_server_final(server_final).unwrap();
}

fn after_server_first(mechanism: Mechanism) -> ScramClient {
    let mut c = ScramClient::with_nonce(mechanism, "user", "pencil", NONCE);
    c.client_first();
    c.handle_server_first(SERVER_FIRST.as_bytes()).unwrap();
    c
}

#[test]
fn wrong_server_signature_is_rejected() {
    let mut c = after_server_first(Mechanism::ScramSha256);
    // The SHA-512 signature is well-formed base64 but wrong here.
    let err = c
        .handle_server_final(b"v=7rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
        .unwrap_err();
    assert!(matches!(err, Error::ServerSignatureMismatch), "{err}");
    assert!(!c.is_done());
    // And the exchange is over.
    assert!(matches!(c.handle(b"v=x"), Err(Error::OutOfOrder { .. })));
}

#[test]
fn wrong_password_gives_a_different_proof() {
    let mut c = ScramClient::with_nonce(Mechanism::ScramSha256, "user", "pencil2", NONCE);
    c.client_first();
    let client_final = c.handle_server_first(SERVER_FIRST.as_bytes()).unwrap();
    assert!(
        !String::from_utf8(client_final)
            .unwrap()
            .ends_with("p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
    );
    assert!(matches!(
        c.handle_server_final(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="),
        Err(Error::ServerSignatureMismatch)
    ));
}

#[test]
fn server_error_is_an_authentication_failure() {
    let mut c = after_server_first(Mechanism::ScramSha256);
    let err = c.handle_server_final(b"e=invalid-proof").unwrap_err();
    assert!(matches!(err, Error::AuthenticationFailed { ref message } if message == "invalid-proof"));
    let mut c = ScramClient::with_nonce(Mechanism::ScramSha256, "user", "pencil", NONCE);
    c.client_first();
    assert!(matches!(
        c.handle_server_first(b"e=unknown-user"),
        Err(Error::AuthenticationFailed { .. })
    ));
}

#[test]
fn wrong_nonce_is_rejected() {
    for server_first in [
        "r=somebodyElsesNonce123,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
        // Exactly the client nonce: the server added nothing.
        "r=rOprNGfwEbeRWgbNEkqO,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
    ] {
        let mut c = ScramClient::with_nonce(Mechanism::ScramSha256, "user", "pencil", NONCE);
        c.client_first();
        assert!(
            matches!(
                c.handle_server_first(server_first.as_bytes()),
                Err(Error::NonceMismatch)
            ),
            "{server_first}"
        );
    }
}

#[test]
fn malformed_server_messages_are_typed_errors() {
    let cases: &[&[u8]] = &[
        b"",
        b"garbage",
        b"\xff\xfe",
        b"r=rOprNGfwEbeRWgbNEkqOxyz,i=4096",                     // no salt
        b"r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==", // no iterations
        b"s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",                    // no nonce
        b"r=rOprNGfwEbeRWgbNEkqOxyz,s=!!notbase64,i=4096",
        b"r=rOprNGfwEbeRWgbNEkqOxyz,s=,i=4096",
        b"r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=many",
        b"m=ext,r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
    ];
    for bytes in cases {
        let mut c = ScramClient::with_nonce(Mechanism::ScramSha256, "user", "pencil", NONCE);
        c.client_first();
        let err = c.handle_server_first(bytes).unwrap_err();
        assert!(
            matches!(err, Error::MalformedServerMessage { .. }),
            "{:?}: {err}",
            String::from_utf8_lossy(bytes)
        );
    }
    for i in ["1", "4095", "99999999999", "-1"] {
        let mut c = ScramClient::with_nonce(Mechanism::ScramSha256, "user", "pencil", NONCE);
        c.client_first();
        let msg = format!("r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i={i}");
        let err = c.handle_server_first(msg.as_bytes()).unwrap_err();
        assert!(
            matches!(
                err,
                Error::IterationCount { .. } | Error::MalformedServerMessage { .. }
            ),
            "{i}: {err}"
        );
    }
    let mut c = after_server_first(Mechanism::ScramSha256);
    assert!(matches!(
        c.handle_server_final(b"x=1"),
        Err(Error::MalformedServerMessage { .. })
    ));
    let mut c = after_server_first(Mechanism::ScramSha256);
    assert!(matches!(
        c.handle_server_final(b"v=***"),
        Err(Error::MalformedServerMessage { .. })
    ));
}

#[test]
fn steps_out_of_order_are_errors() {
    let mut c = ScramClient::with_nonce(Mechanism::ScramSha256, "user", "pencil", NONCE);
    assert!(matches!(
        c.handle_server_first(SERVER_FIRST.as_bytes()),
        Err(Error::OutOfOrder { .. })
    ));
    assert!(matches!(
        c.handle_server_final(b"v=abc"),
        Err(Error::OutOfOrder { .. })
    ));
    assert!(matches!(c.handle(b"r=x"), Err(Error::OutOfOrder { .. })));
}

#[test]
fn usernames_are_escaped_and_nonces_are_random() {
    let mut c = ScramClient::with_nonce(Mechanism::ScramSha256, "a=b,c", "p", "n0nce");
    assert_eq!(c.client_first(), b"n,,n=a=3Db=2Cc,r=n0nce");
    let a = ScramClient::new(Mechanism::ScramSha256, "u", "p")
        .unwrap()
        .client_nonce;
    let b = ScramClient::new(Mechanism::ScramSha256, "u", "p")
        .unwrap()
        .client_nonce;
    assert_ne!(a, b);
    assert!(a.len() >= 24 && a.bytes().all(|c| (0x21..=0x7e).contains(&c) && c != b','));
}

#[test]
fn debug_redacts_the_password() {
    let c = ScramClient::with_nonce(Mechanism::ScramSha256, "user", "pencil", NONCE);
    let shown = format!("{c:?}");
    assert!(
        !shown.contains("pencil") && shown.contains("<redacted>"),
        "{shown}"
    );
}

proptest::proptest! {
    #[test]
    fn arbitrary_server_messages_never_panic(first in proptest::collection::vec(proptest::num::u8::ANY, 0..80),
                                             last in proptest::collection::vec(proptest::num::u8::ANY, 0..80)) {
        let mut c = ScramClient::with_nonce(Mechanism::ScramSha256, "user", "pencil", NONCE);
        c.client_first();
        let _ = c.handle(&first);
        let _ = c.handle(&last);
        // Straight to waiting for server-final (no PBKDF2 per case: it is slow in debug builds).
        let mut c = ScramClient::with_nonce(Mechanism::ScramSha512, "user", "pencil", NONCE);
        c.state = State::ClientFinalSent { server_signature: vec![7; 64] };
        let _ = c.handle(&last);
        proptest::prop_assert!(!c.is_done() || last.starts_with(b"v="));
    }
}
