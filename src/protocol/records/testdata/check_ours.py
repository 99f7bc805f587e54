# Reads the batches `dump_batches_for_kafka_python` wrote (target/records-dump/) with kafka-python's
# record codec and the C compression libraries, and checks every field. Run from the crate root:
#   cargo test --lib dump_batches_for_kafka_python -- --ignored
#   python src/protocol/records/testdata/check_ours.py
from kafka.record.default_records import DefaultRecordBatch

for cid, name in enumerate(["none", "gzip", "snappy", "lz4", "zstd"]):
    batch = DefaultRecordBatch(open(f"target/records-dump/{name}.bin", "rb").read())
    assert batch.validate_crc(), name
    assert batch.compression_type == cid, name
    assert (batch.producer_id, batch.producer_epoch, batch.base_sequence) == (99, 3, 7), name
    records = list(batch)
    assert len(records) == 50, name
    for i, r in enumerate(records):
        assert r.offset == i and r.timestamp == 1_700_000_000_000 + i, (name, i)
        assert r.key == b"k%d" % i, (name, i)
        want = (b"".join(b"payload-%d " % (j % 7) for j in range(8000)) if i == 49 else b'{"n":%d}' % i)
        assert r.value == want, (name, i)
        assert r.headers == [("event_type", b"OrderCreated"), ("dup", b"%d" % i), ("dup", b"x"), ("null", None)], (name, i, r.headers)
    print(name, "ok:", len(records), "records")
