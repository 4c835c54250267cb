"""The security core without a server: SCRAM maths, principal mapping, ACL decisions."""

import base64

import pytest
from kafka.net.sasl.scram import ScramClient

from eventstore.security.acl import (
    AclBinding,
    AclFilter,
    Authorizer,
    Operation,
    PatternType,
    Permission,
    ResourcePattern,
    ResourceType,
)
from eventstore.security.principal import map_subject, parse_rules, subject_name
from eventstore.security.scram import (
    ExchangeState,
    ScramError,
    ScramServerExchange,
    make_credential,
    verify_password,
)


def login(mechanism, store, user, password):
    """A full SCRAM login of kafka-python's client against the server exchange."""
    client = ScramClient(user, password, mechanism)
    exchange = ScramServerExchange(mechanism, store.get)
    client.process_server_first_message(exchange.respond(client.first_message()))
    client.process_server_final_message(exchange.respond(client.final_message()))
    return exchange


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_kafka_python_client_logs_in_and_checks_the_server_signature(mechanism):
    store = {"alice": make_credential(mechanism, "s3cret")}
    exchange = login(mechanism, store, "alice", "s3cret")
    assert exchange.state is ExchangeState.COMPLETE
    assert exchange.username == "alice"


@pytest.mark.parametrize("user,password", [("alice", "wrong"), ("nobody", "s3cret")])
def test_wrong_password_and_unknown_user_fail_alike(user, password):
    store = {"alice": make_credential("SCRAM-SHA-512", "s3cret")}
    with pytest.raises(ScramError, match="authentication failed"):
        login("SCRAM-SHA-512", store, user, password)


def test_credential_of_the_other_mechanism_does_not_log_in():
    store = {"alice": make_credential("SCRAM-SHA-256", "s3cret")}
    with pytest.raises(ScramError):
        login("SCRAM-SHA-512", store, "alice", "s3cret")


def test_rfc7677_test_vector():
    """RFC 7677 section 3: user/pencil, 4096 iterations, fixed nonces and salt."""
    salt = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
    store = {"user": make_credential("SCRAM-SHA-256", "pencil", 4096, salt)}
    exchange = ScramServerExchange(
        "SCRAM-SHA-256", store.get, nonce="%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
    )
    first = exchange.respond(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO")
    assert (
        first
        == b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
    )
    final = exchange.respond(
        b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
        b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
    )
    assert final == b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="


def test_credential_keeps_no_password_and_plain_checks_against_it():
    credential = make_credential("SCRAM-SHA-512", "s3cret")
    assert b"s3cret" not in repr(credential).encode()
    assert verify_password(credential, "s3cret")
    assert not verify_password(credential, "s3cret!")


@pytest.mark.parametrize(
    "messages",
    [
        [b"garbage"],
        [b"\xff\xfe"],
        [b"n,,n=alice"],
        [b"n,,n=alice,r=abc", b"c=biws,r=other,p=AAAA"],
        [b"n,,n=alice,r=abc", b"c=biws,r=abc"],
    ],
)
def test_malformed_messages_fail_the_exchange(messages):
    store = {"alice": make_credential("SCRAM-SHA-256", "s3cret")}
    exchange = ScramServerExchange("SCRAM-SHA-256", store.get)
    with pytest.raises(ScramError):
        for message in messages:
            exchange.respond(message)
    assert exchange.state is ExchangeState.FAILED


def test_iterations_outside_kafkas_bounds_are_refused():
    with pytest.raises(ValueError):
        make_credential("SCRAM-SHA-256", "pw", iterations=1000)


SUBJECT = (
    (("countryName", "US"),),
    (("organizationName", "Acme, Inc."),),
    (("organizationalUnitName", "eng"),),
    (("commonName", "alice"),),
)


def test_subject_is_rfc2253_most_specific_first():
    assert subject_name(SUBJECT) == "CN=alice,OU=eng,O=Acme\\, Inc.,C=US"


def test_default_rule_keeps_the_whole_subject():
    assert map_subject(parse_rules("DEFAULT"), "CN=alice,OU=eng") == "User:CN=alice,OU=eng"


def test_first_matching_rule_wins_with_case_flag():
    rules = parse_rules(
        "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/U, RULE:^CN=(.*?),OU=(.*?),.*$/$1@$2/L, DEFAULT"
    )
    assert map_subject(rules, "CN=svc,OU=ServiceUsers,O=Acme") == "User:SVC"
    assert map_subject(rules, "CN=Alice,OU=Eng,O=Acme") == "User:alice@eng"
    assert map_subject(rules, "CN=bob") == "User:CN=bob"


def test_malformed_rules_are_refused():
    with pytest.raises(ValueError):
        parse_rules("RULE:nope")


def acl(
    name,
    operation,
    permission=Permission.ALLOW,
    pattern=PatternType.LITERAL,
    principal="User:alice",
    resource=ResourceType.TOPIC,
):
    return AclBinding(
        ResourcePattern(resource, name, pattern), principal, "*", operation, permission
    )


def test_read_on_one_topic_allows_no_write_and_no_other_topic():
    authorizer = Authorizer(frozenset({acl("orders", Operation.READ)}))
    assert authorizer.authorize(
        "User:alice", "10.0.0.1", Operation.READ, ResourceType.TOPIC, "orders"
    )
    assert authorizer.authorize(
        "User:alice", "10.0.0.1", Operation.DESCRIBE, ResourceType.TOPIC, "orders"
    )
    assert not authorizer.authorize(
        "User:alice", "10.0.0.1", Operation.WRITE, ResourceType.TOPIC, "orders"
    )
    assert not authorizer.authorize(
        "User:alice", "10.0.0.1", Operation.READ, ResourceType.TOPIC, "payments"
    )
    assert not authorizer.authorize(
        "User:bob", "10.0.0.1", Operation.READ, ResourceType.TOPIC, "orders"
    )


def test_prefixed_allow_and_literal_deny_combine_deny_wins():
    authorizer = Authorizer(
        frozenset(
            {
                acl("sales-", Operation.ALL, pattern=PatternType.PREFIXED),
                acl("sales-secret", Operation.READ, Permission.DENY),
            }
        )
    )
    assert authorizer.authorize("User:alice", "h", Operation.WRITE, ResourceType.TOPIC, "sales-eu")
    assert authorizer.authorize(
        "User:alice", "h", Operation.WRITE, ResourceType.TOPIC, "sales-secret"
    )
    assert not authorizer.authorize(
        "User:alice", "h", Operation.READ, ResourceType.TOPIC, "sales-secret"
    )


def test_wildcards_super_users_and_no_acl_found():
    authorizer = Authorizer(
        frozenset({acl("*", Operation.READ, principal="User:*", resource=ResourceType.GROUP)}),
        super_users=frozenset({"User:admin"}),
    )
    assert authorizer.authorize("User:anyone", "h", Operation.READ, ResourceType.GROUP, "g1")
    assert authorizer.authorize(
        "User:admin", "h", Operation.ALTER, ResourceType.CLUSTER, "kafka-cluster"
    )
    assert not authorizer.authorize(
        "User:anyone", "h", Operation.CREATE, ResourceType.CLUSTER, "kafka-cluster"
    )
    open_authorizer = Authorizer(allow_if_no_acl=True)
    assert open_authorizer.authorize(
        "User:anyone", "h", Operation.CREATE, ResourceType.CLUSTER, "kafka-cluster"
    )


def test_alter_configs_implies_describe_configs_only():
    authorizer = Authorizer(frozenset({acl("t", Operation.ALTER_CONFIGS)}))
    assert authorizer.authorize(
        "User:alice", "h", Operation.DESCRIBE_CONFIGS, ResourceType.TOPIC, "t"
    )
    assert not authorizer.authorize("User:alice", "h", Operation.ALTER, ResourceType.TOPIC, "t")


def test_filters_describe_and_delete_with_match_semantics():
    prefixed = acl("sales-", Operation.READ, pattern=PatternType.PREFIXED)
    literal = acl("sales-eu", Operation.WRITE)
    other = acl("hr", Operation.READ, principal="User:bob")
    authorizer = Authorizer(frozenset({prefixed, literal, other}))
    assert authorizer.describe(AclFilter(name="sales-eu", pattern_type=PatternType.MATCH)) == (
        prefixed,
        literal,
    )
    assert authorizer.describe(AclFilter(principal="User:bob")) == (other,)
    remaining, removed = authorizer.without(AclFilter(pattern_type=PatternType.PREFIXED))
    assert removed == (prefixed,)
    assert remaining.acls == frozenset({literal, other})


def test_invalid_bindings_are_refused():
    with pytest.raises(ValueError):
        acl("t", Operation.ANY)
    with pytest.raises(ValueError):
        acl("t", Operation.READ, principal="alice")


def test_authorize_any_finds_a_write_on_some_topic_a_same_pattern_deny_undoes():
    """IDEMPOTENT_WRITE's fallback (KIP-679): WRITE allowed on some topic."""
    writer = Authorizer(frozenset({acl("orders", Operation.WRITE)}))
    assert writer.authorize_any("User:alice", "h", Operation.WRITE, ResourceType.TOPIC)
    assert not writer.authorize_any("User:bob", "h", Operation.WRITE, ResourceType.TOPIC)
    assert not writer.authorize_any("User:alice", "h", Operation.WRITE, ResourceType.GROUP)
    undone = writer.with_acls({acl("orders", Operation.WRITE, Permission.DENY)})
    assert not undone.authorize_any("User:alice", "h", Operation.WRITE, ResourceType.TOPIC)
    everywhere = writer.with_acls({acl("*", Operation.ALL, Permission.DENY)})
    assert not everywhere.authorize_any("User:alice", "h", Operation.WRITE, ResourceType.TOPIC)
    reader = Authorizer(frozenset({acl("orders", Operation.READ)}))
    assert not reader.authorize_any("User:alice", "h", Operation.WRITE, ResourceType.TOPIC)
