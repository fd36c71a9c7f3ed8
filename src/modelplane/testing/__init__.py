"""Test support for users of the platform: fakes to write your own tests against.

As ``temporalio.testing`` and ``kopf.testing`` do for their frameworks, this package owns the
stand-ins a test (ours, or a user's) puts where a real dependency would be:
:class:`FakeUpstream`, a fake OpenAI-compatible provider whose behaviour (errors, dropped
connections, hangs, delays, the reply, the ``/metrics`` figures) a test sets while it runs;
``python -m modelplane.testing.upstream`` runs one as a process (the gateway benchmark does).

Must not touch: the runtime packages. Nothing here imports a subsystem, and no runtime package
imports this one; the fakes speak only the public wire protocols (OpenAI over HTTP).

Example::

    from modelplane.testing import FakeUpstream

    with FakeUpstream("provider", reply="pong") as provider:
        ...  # point an Endpoint's upstream at provider.url
"""

from modelplane.testing.upstream import FakeUpstream

__all__ = ["FakeUpstream"]
