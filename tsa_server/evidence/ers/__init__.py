"""RFC 4998 evidence records (Evidence Record Syntax) for the evidence items.

- `asn1`: the ASN.1 structures (EvidenceRecord, ArchiveTimeStampSequence/Chain,
  ArchiveTimeStamp, PartialHashtree) and hashing helpers;
- `tree`: the hash tree over a group, reduced hash trees and the walk back to the root;
- `build`: initial records for a group, timestamp renewal, hash-tree renewal;
- `verify`: the whole record against a data object, each token by the project's token
  verifier, each ArchiveTimeStamp valid when the next one was made;
- `renewal`: what the renewal scheduler does each pass (evidence/renewal_runner.py);
- `command`: `tsa verify --evidence-record` (cli/verify.py parses its options).

docs/evidence-records.md describes the rules and the format.
"""
