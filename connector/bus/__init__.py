"""The message bus edge: RabbitMQ (pika) behind a Protocol, an in-memory stub, the consumer loop.

pika is imported only in ``rabbitmq.py``; everything else speaks ``base.Bus``. The delivery
contract (architecture.md, rabbitmq-notes.md) lives in ``consumer.py`` and ``relay.py``.
"""
