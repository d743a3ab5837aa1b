"""aiokafka (asyncio, its own protocol code) doing exactly-once
consume-transform-produce: an idempotent producer fills IN; a transaction
that writes "aborted-N" values to OUT is aborted; then a group consumer of
IN (read_committed) and a transactional producer copy every value to OUT as
"out-VALUE", each batch's writes and its consumed offsets committed in one
transaction; finally OUT is read with read_committed and with
read_uncommitted.

Usage: aiokafka_exactly_once.py BOOTSTRAP IN OUT GROUP COUNT
Prints one JSON line: {"committed": [values], "uncommitted": [values],
"transactions": n}.
"""
import asyncio
import json
import sys

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

# Every wait is bounded: a client that hangs fails the test, not CI.
DEADLINE_S = 60
ABORTED = 20


async def fill(bootstrap, topic, count):
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, linger_ms=5)
    await producer.start()
    try:
        sends = [await producer.send(topic, ("v-%05d" % i).encode()) for i in range(count)]
        await asyncio.gather(*sends)
    finally:
        await producer.stop()


async def abort_one(producer, out):
    await producer.begin_transaction()
    for i in range(ABORTED):
        await producer.send(out, ("aborted-%d" % i).encode())
    await producer.flush()
    await producer.abort_transaction()


async def copy(bootstrap, src, out, group, count):
    consumer = AIOKafkaConsumer(
        src,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, transactional_id="aiokafka-eos")
    await consumer.start()
    await producer.start()
    try:
        await abort_one(producer, out)
        copied, transactions = 0, 0
        loop = asyncio.get_running_loop()
        deadline = loop.time() + DEADLINE_S
        while copied < count:
            if loop.time() > deadline:
                raise RuntimeError("copied only %d of %d" % (copied, count))
            batches = await consumer.getmany(timeout_ms=500, max_records=100)
            if not batches:
                continue
            async with producer.transaction():
                offsets = {}
                for tp, messages in batches.items():
                    for m in messages:
                        await producer.send(out, b"out-" + m.value)
                    offsets[tp] = messages[-1].offset + 1
                    copied += len(messages)
                await producer.send_offsets_to_transaction(offsets, group)
            transactions += 1
        return transactions
    finally:
        await producer.stop()
        await consumer.stop()


async def read(bootstrap, topic, isolation, want):
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        isolation_level=isolation,
    )
    await consumer.start()
    try:
        values = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + DEADLINE_S
        # Past `want`, one more poll shows whether anything else is there.
        extra_polls = 2
        while extra_polls > 0 and loop.time() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            for messages in batches.values():
                values.extend(m.value.decode() for m in messages)
            if len(values) >= want:
                extra_polls -= 1
        return values
    finally:
        await consumer.stop()


async def main():
    bootstrap, src, out, group, count = sys.argv[1:5] + [int(sys.argv[5])]
    await fill(bootstrap, src, count)
    transactions = await copy(bootstrap, src, out, group, count)
    committed = await read(bootstrap, out, "read_committed", count)
    uncommitted = await read(bootstrap, out, "read_uncommitted", count + ABORTED)
    print(
        json.dumps(
            {
                "committed": committed,
                "uncommitted": uncommitted,
                "transactions": transactions,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    asyncio.run(main())
