"""Real backing services the tests start and stop themselves: PostgreSQL (``postgres``), an
S3-protocol server (``s3``) and a Ray cluster (``ray_cluster``). Their fixtures are imported by
``tests/conftest.py``; nothing here runs unless a test asks for it."""
