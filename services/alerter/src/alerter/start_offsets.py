"""Where a brand-new alerter consumer group starts: the end of the input topics, pinned.

Kafka's ``auto.offset.reset=latest`` applies per partition whenever a partition has no
committed offset, which includes a partition that simply received nothing before a restart:
records produced there while the alerter was down would be skipped. Instead, before faust
joins its group, every input partition without a committed offset gets the current end offset
committed once; after that faust reads from committed offsets only (its reset is ``earliest``),
so nothing produced after the first start is ever skipped, and the history from before the
first start is not alerted on.
"""

from __future__ import annotations

from aiokafka import TopicPartition
from aiokafka.structs import OffsetAndMetadata

from alerter.settings import AlerterSettings
from trulayer_common.kafka import create_consumer, topic_partitions
from trulayer_common.logging import get_logger

log = get_logger(__name__)


async def pin_start_offsets(settings: AlerterSettings, topics: list[str]) -> int:
    """Commit end offsets for the group's input partitions that have none; returns how many."""
    consumer = create_consumer(settings, group_id=settings.alerter_app_id, client_id=f"{settings.alerter_app_id}-pin")
    await consumer.start()
    try:
        partitions = [TopicPartition(t, p) for t in topics for p in await topic_partitions(settings, t)]
        consumer.assign(partitions)
        missing = [tp for tp in partitions if await consumer.committed(tp) is None]
        if not missing:
            return 0
        end = await consumer.end_offsets(missing)
        await consumer.commit({tp: OffsetAndMetadata(offset, "") for tp, offset in end.items()})
        log.info("alerter_start_offsets_pinned", partitions=len(missing))
        return len(missing)
    finally:
        await consumer.stop()
