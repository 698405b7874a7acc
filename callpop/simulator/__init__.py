"""The simulated PBX: a real AMI server on loopback that plays call scenarios made from recorded
Asterisk captures, used by ``callpop demo``, ``callpop simulate`` and the tests."""
