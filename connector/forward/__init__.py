"""``ivpush forward``: DFT^P03 charge messages from the output queue to a receiver over MLLP.

``forwarder`` is the loop (one connection, strictly sequential, prefetch 1), ``mllp`` the TCP
client and its framing, ``ack`` reads the receiver's ACK, ``parking`` parks what the receiver
refused, ``metrics`` counts it all and ``settings`` holds what a site configures.
"""
