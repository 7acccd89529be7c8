"""Everything tests share, and the only place they share it from (tests/unit/test_test_layout.py):

* ``paths``, ``databases``: the repository and example corpus; the test PostgreSQL, backends;
* ``stack``: the real processes of an end-to-end test; ``e2e``: one stack per module and backend;
* ``inbox``: a watcher in a thread and the messages it queued; ``faults``: the chaos inputs,
  faults and ``account_for``; ``hostile``: the hostile corpus; ``corpus``: generated articles
  and near copies; ``documents``: binary documents built from their specifications;
* ``store``: a document store and the batch the pipeline hands it; ``logs``: ``captured_logs``;
* ``http``: the webhook receiver and free ports; ``webhooks``: their secret and the webhook
  worker; ``redis_servers``: a password or TLS redis-server; ``cli``, ``contract``: the
  ``seedworker`` command as a user and as a third party run it.
"""
