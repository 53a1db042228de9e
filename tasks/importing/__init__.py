"""The import, cartography-style: one module per verb.

``fetch`` (adapter calls only) -> ``transform`` (pure: Inventory + LedgerView -> ImportPlan)
-> ``load`` (bulk upserts in one transaction) + ``cleanup`` (vanished, drift, enrolment).
``model`` holds the shapes passed between them; ``names`` the naming rules; ``lock`` keeps
runs one at a time. The entry points are in ``tasks.importing.importer``.
"""
