"""The Bedrock dialect of Tailor's HTTP API: botocore's contract, errors and ARNs, routes, conversions."""
