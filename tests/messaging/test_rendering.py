import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clientdesk.core.errors import ValidationFailed
from clientdesk.messaging.rendering import RenderFailed, render_message

pytestmark = pytest.mark.django_db
# The fixtures (a client, a sender) are read-only, so sharing them across examples is safe.
_FIXTURES_OK = [HealthCheck.function_scoped_fixture]


@pytest.fixture
def zoe(make_client):
    return make_client(first_name="Zoë", last_name="Müller", email="zoe@example.de")


def render(source, client, sender):
    return render_message(source=source, client=client, sender=sender)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("Hi {{firstName}}!", "Hi Zoë!"),
        ("Hi {{ firstName }}!", "Hi Zoë!"),
        ("{{lastName}}, {{fullName}} <{{email}}>", "Müller, Zoë Müller <zoe@example.de>"),
        ("No variables at all.", "No variables at all."),
        ("Hi {{ nickname | default: 'there' }}", "Hi there"),
        ('Hi {{ nickname | default: "there" }}', "Hi there"),
        ("Plain { braces } and }} and {", "Plain { braces } and }} and {"),
    ],
)
def test_variables_are_filled_from_the_client(zoe, agent, source, expected):
    assert render(source, zoe, agent).body == expected


def test_values_used_are_recorded(zoe, agent):
    rendered = render("Hi {{firstName}}, we wrote to {{email}}", zoe, agent)
    assert rendered.variables == {"firstName": "Zoë", "email": "zoe@example.de"}


def test_unknown_variables_are_all_named(zoe, agent):
    with pytest.raises(RenderFailed) as caught:
        render("Hi {{ nickname }} {{firstName}} {{ account.balance }}", zoe, agent)
    assert caught.value.extra["missing_variables"] == ["account.balance"]
    assert "{{account.balance}}" in caught.value.detail


def test_every_unknown_or_empty_variable_is_named_at_once(make_client, agent):
    client = make_client(first_name="Ana", last_name="García", email="", attributes={"tier": ""})
    with pytest.raises(RenderFailed) as caught:
        render("{{ nickname }} {{firstName}} {{ email }} {{ tier }} {{ nickname }}", client, agent)
    assert caught.value.extra["missing_variables"] == ["nickname", "email", "tier"]
    detail = caught.value.detail
    assert "unknown variable {{nickname}}" in detail
    assert "Ana García has no value for {{email}}, {{tier}}" in detail


@pytest.mark.parametrize(
    "source",
    [
        "{{ firstName.size }}",
        "{{ sender.password }}",
        "{{ sender.is_superuser }}",
        "{{ a.b.c }}",
        "{{ email.first | upcase }}",
    ],
)
def test_no_attribute_or_method_access_beyond_the_catalogue(zoe, agent, source):
    with pytest.raises(RenderFailed, match="unknown variable"):
        render(source, zoe, agent)


def test_the_whole_catalogue(make_client, agent):
    client = make_client(
        first_name="Zoë",
        last_name="Müller",
        email="zoe@example.de",
        phone="+49 30 1234",
        language="de",
        external_id="DE-1",
        attributes={"tier": "gold", "score": 7, "vip": True},
    )
    body = render(
        "{{firstName}}|{{lastName}}|{{fullName}}|{{email}}|{{phone}}|{{language}}|"
        "{{externalId}}|{{tier}}|{{score}}|{{vip}}|{{sender.firstName}}|{{sender.fullName}}",
        client,
        agent,
    ).body
    assert (
        body
        == "Zoë|Müller|Zoë Müller|zoe@example.de|+49 30 1234|de|DE-1|gold|7|true|Alex|Alex Agent"
    )


def test_today_is_written_in_the_client_language(make_client, agent):
    from django.utils import timezone

    today = timezone.localdate()
    german = render("{{ today }}", make_client(language="de"), agent).body
    english = render("{{ today }}", make_client(language="en"), agent).body
    assert str(today.year) in german and str(today.year) in english
    assert german != english
    assert german.startswith(f"{today.day}.")


def test_a_sender_without_a_first_name_is_named(zoe, make_user):
    sender = make_user("Agent", first_name="", last_name="")
    with pytest.raises(RenderFailed) as caught:
        render("Regards, {{ sender.firstName }}", zoe, sender)
    assert caught.value.extra["missing_variables"] == ["sender.firstName"]


def test_built_in_names_win_over_attributes(make_client, agent):
    client = make_client(first_name="Zoë", attributes={"firstName": "Mallory"})
    assert render("{{firstName}}", client, agent).body == "Zoë"


def test_a_known_variable_without_a_value_stops_the_send(make_client, agent):
    client = make_client(first_name="Ana", last_name="García", email="")
    with pytest.raises(RenderFailed) as caught:
        render("Hi {{firstName}}, your email is {{email}}", client, agent)
    assert caught.value.extra["missing_variables"] == ["email"]
    assert "Ana García has no value for {{email}}" in caught.value.detail


def test_a_fallback_covers_an_empty_known_variable(make_client, agent):
    client = make_client(first_name="Ana", last_name="", email="")
    body = render("Dear {{ lastName | default: 'client' }}", client, agent).body
    assert body == "Dear client"


def test_syntax_errors_give_line_and_column(zoe, agent):
    with pytest.raises(RenderFailed) as caught:
        render("Hello\n  there {{ firstName ", zoe, agent)
    assert caught.value.extra["line"] == 2
    assert caught.value.extra["column"] == 9
    assert "line 2, column 9" in caught.value.detail


@pytest.mark.parametrize(
    "source",
    [
        "{% if %}",
        "{% for x in %}{% endfor %}",
        "{{ firstName | nosuchfilter }}",
        "{% endif %}",
        "{% include 'x' %}",
        "{% render 'x' %}",
    ],
)
def test_broken_or_disallowed_templates_get_a_clear_error(zoe, agent, source):
    with pytest.raises(RenderFailed) as caught:
        render(source, zoe, agent)
    assert caught.value.detail


def test_runaway_loops_are_refused(zoe, agent):
    with pytest.raises(RenderFailed, match="too complex"):
        render("{% for i in (1..100000000) %}x{% endfor %}", zoe, agent)


def test_output_over_the_limit_is_refused(zoe, agent):
    with pytest.raises(RenderFailed, match="limit is 5,000"):
        render("{% for i in (1..900) %}{{ firstName }}-{{ firstName }}{% endfor %}", zoe, agent)


def test_blank_result_is_refused(make_client, agent):
    client = make_client(first_name="Ana")
    with pytest.raises(RenderFailed, match="empty"):
        render("{% if false %}x{% endif %}   ", client, agent)


def test_markup_is_kept_as_text_not_executed(make_client, agent):
    client = make_client(first_name="<img src=x onerror=alert(1)>")
    assert render("{{firstName}}", client, agent).body == "<img src=x onerror=alert(1)>"


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(source=st.text(max_size=400))
def test_any_text_renders_or_fails_clearly(zoe, agent, source):
    try:
        rendered = render(source, zoe, agent)
    except ValidationFailed as error:
        assert error.detail
        return
    assert len(rendered.body) <= 5000
    if "{{" in rendered.body:  # only text the sender typed literally, e.g. inside {% raw %}
        assert "{{" in source


_fragments = st.sampled_from(
    [
        "{{",
        "}}",
        "{%",
        "%}",
        "firstName",
        "email",
        "nickname",
        " | default: 'x' ",
        "for i in (1..99999)",
        "endfor",
        "if",
        "endif",
        "raw",
        "endraw",
        "assign a = 1",
        "capture",
        "endcapture",
        "'",
        '"',
        "\n",
        "x",
    ]
)


@settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(parts=st.lists(_fragments, max_size=30))
def test_template_like_input_never_escapes_its_bounds(zoe, agent, parts):
    try:
        rendered = render("".join(parts), zoe, agent)
    except ValidationFailed as error:
        assert error.detail
        return
    assert 0 < len(rendered.body) <= 5000


@pytest.mark.parametrize(
    "source",
    [
        "{% for a in (1..999) %}{% for b in (1..999) %}{% endfor %}{% endfor %}x",
        '{% assign s = "xxxxxxxxxx" %}{% for a in (1..60) %}{% assign s = s | append: s %}'
        "{% endfor %}{{ s | size }}",
    ],
)
def test_hostile_templates_are_refused_quickly(zoe, agent, source):
    import time

    started = time.monotonic()
    with pytest.raises(RenderFailed, match="too complex"):
        render(source, zoe, agent)
    assert time.monotonic() - started < 1.0


def test_a_source_is_parsed_once_and_its_template_serves_every_client(make_client, agent):
    from clientdesk.messaging.rendering import _parsed, parse_template, render_message

    source = "Hi {{ firstName }} {{ nickname | default: 'there' }} #" + str(id(agent))
    first, paths = parse_template(source)
    again, paths_again = parse_template(source)
    assert again is first and paths == paths_again == ["firstName", "nickname"]
    paths.append("mutated")  # a caller's list is its own
    assert parse_template(source)[1] == ["firstName", "nickname"]
    ana = make_client(first_name="Ana")
    bo = make_client(first_name="Bo", attributes={"nickname": "B"})
    assert render_message(source=source, client=ana, sender=agent).body.startswith("Hi Ana there")
    assert render_message(source=source, client=bo, sender=agent).body.startswith("Hi Bo B")
    hits = _parsed.cache_info().hits
    render_message(source=source, client=ana, sender=agent)
    assert _parsed.cache_info().hits == hits + 1


def test_a_syntax_error_is_reported_every_time(make_client, agent):
    from clientdesk.messaging.rendering import RenderFailed, parse_template

    for _ in range(2):
        with pytest.raises(RenderFailed, match="line 1"):
            parse_template("Hi {{ firstName ")
