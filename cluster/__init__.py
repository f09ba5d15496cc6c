"""Farm membership, the consistent-hash ring and the inter-member link (issue: the farm)."""
