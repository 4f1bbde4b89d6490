"""The service layer: async functions over the Documents, usable in-process without HTTP.

Every function takes the tenant (`org_id`) first, so no call can reach another org's data.
Writes are single-document atomic updates (no transactions, MONGO-COMPAT.md).
"""
