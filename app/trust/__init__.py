"""The operator's trust list: issuers the operator vouches for (the `listed` trust level)."""
