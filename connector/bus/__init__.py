"""The message bus edge: RabbitMQ (pika) behind a Protocol, an in-memory stub, the consumer loop.

pika is imported only in the ``rabbitmq*.py`` modules; everything else speaks ``base.Bus``. The
delivery contract (architecture.md, rabbitmq-notes.md) lives in ``consumer.py`` (the loop),
``batch.py`` and ``parking.py`` (one batch) and ``relay.py`` (the outbox).
"""
