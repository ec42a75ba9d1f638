"""The manager's dunning policy page."""

from billing.models import DunningPolicy


def form_data(**overrides):
    data = {
        "retry_offsets_days": "0, 2, 4", "step_channels": "both, sms, both", "exhaust_after_days": "",
        "exhausted_action": "pause", "flag_text": "Card declined — update card before treatment",
        "sms_template": "Hi {{ first_name }}, please update your card for {{ practice_name }}: {{ card_update_link }}",
        "email_subject_template": "{{ practice_name }}: please update your card",
        "email_body_template": "Hi {{ first_name }}, update your card here: {{ card_update_link }}",
    }
    data.update(overrides)
    return data


def test_manager_saves_a_new_version(client, manager, glow):
    client.force_login(manager)
    page = client.get("/manage/dunning/policy/")
    assert page.status_code == 200 and b"version 1" in page.content
    response = client.post("/manage/dunning/policy/", form_data())
    assert response.status_code == 302
    current = DunningPolicy.objects.get(is_current=True)
    assert current.version == 2 and current.retry_offsets_days == [0, 2, 4] and current.created_by == manager
    page = client.get("/manage/dunning/policy/")
    assert b"Saved as version 2" in page.content and b"version 2" in page.content


def test_bad_input_is_shown_and_changes_nothing(client, manager, glow):
    client.force_login(manager)
    client.get("/manage/dunning/policy/")
    for data in (form_data(sms_template="Your HydraFacial awaits {{ card_update_link }}"),
                 form_data(retry_offsets_days="zero, three"),
                 form_data(step_channels="sms, carrier pigeon, both")):
        response = client.post("/manage/dunning/policy/", data)
        assert response.status_code == 200 and b'class="error"' in response.content
    assert DunningPolicy.objects.count() == 1
    assert b"nothing clinical" in client.post("/manage/dunning/policy/",
                                              form_data(email_subject_template="HydraFacial")).content


def test_front_desk_cannot_edit_the_policy(client, front_desk):
    client.force_login(front_desk)
    assert client.get("/manage/dunning/policy/").status_code == 403
    assert client.post("/manage/dunning/policy/", form_data()).status_code == 403
