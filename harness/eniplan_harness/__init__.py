"""eniplan EC2 test harness: LocalStack 4.14.0 launcher, EC2 patch layer, control API, IMDS double.

See harness/README.md.
"""
