"""Security core: SCRAM credential maths, TLS principal mapping and the ACL authorizer.

Plain logic with no server and no actor: the Kafka front end drives it.
"""
