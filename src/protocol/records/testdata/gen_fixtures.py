# Run from the crate root in a venv with kafka-python 3.0.12, lz4, zstandard and python-snappy installed:
#   python src/protocol/records/testdata/gen_fixtures.py
# Writes record batches encoded by kafka-python (its own codec; C liblz4 / libzstd / snappy via the
# lz4, zstandard and python-snappy packages) as test fixtures for the Rust decoder.
import kafka, lz4, zstandard
from kafka.record.default_records import DefaultRecordBatchBuilder as B
names = {0: "none", 1: "gzip", 2: "snappy", 3: "lz4", 4: "zstd"}
for cid, name in names.items():
    b = B(magic=2, compression_type=cid, is_transactional=0, producer_id=4242, producer_epoch=7,
          base_sequence=1000, batch_size=10**7)
    for i in range(20):
        key = None if i % 3 == 0 else b"key-%d" % i
        value = b"value-%d " % i + b"abcdefgh" * i
        if i == 19 and cid != 0:
            # Past two xerial blocks (32 KiB) and one lz4 block (64 KiB).
            value = b"".join(b"event-payload-%d " % (j % 10) for j in range(5000))
        headers = [("h", b"%d" % i), ("h", None), ("dup", b"a"), ("dup", b"b")]
        assert b.append(i, 1_700_000_000_000 + i * 5, key, value, headers) is not None
    data = bytes(b.build())
    open(f"src/protocol/records/testdata/kafka_python_{name}.bin", "wb").write(data)
    print(name, len(data))
print("kafka-python", kafka.__version__, "lz4", lz4.__version__, "zstandard", zstandard.__version__)
