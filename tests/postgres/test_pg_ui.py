"""``bmem ui`` over PostgreSQL: every page, a decision, and the columns in memory following the writes."""

from __future__ import annotations

import re

from behavior_memory import BehaviorMemory
from behavior_memory.config.settings import load_config_text
from behavior_memory.types import BehaviorStatus
from behavior_memory.ui.queries import ContractBrowser
from ui.ui_seed import client_for, csrf_of, seed


def test_the_ui_over_postgres(pg_store, tmp_path):
    config = load_config_text("embeddings:\n  provider: hashing\nreflection:\n  mode: 'off'\n", base_dir=tmp_path)
    memory = BehaviorMemory(config, store=pg_store)
    ids = seed(memory)
    client = client_for(memory)
    assert isinstance(client.app.state.ui.browser, ContractBrowser)

    def names(url: str) -> list[str]:
        return re.findall(r'class="name">(behavior_\w+)<', client.get(url).text)

    assert names("/?sort=cited&size=2") == ["behavior_inclusion_exclusion", "behavior_check_units"]
    assert "page 4 of 4" in client.get("/?size=2&page=1000000").text
    for url in (
        "/review",
        "/traces?outcome=success",
        f"/traces/{ids['trace1']}",
        "/plots",
        "/behaviors/behavior_check_units",
    ):
        r = client.get(url)
        assert r.status_code == 200, url
    assert "shown in 12 tasks, withheld from 12" in client.get("/behaviors/behavior_check_units").text
    form = {"csrf": csrf_of(client), "action": "approve", "next": "/review"}
    assert client.post(f"/behaviors/{ids['behavior_draw_a_figure']}/decide", data=form).status_code == 200
    assert memory.handbook.get("behavior_draw_a_figure").status == BehaviorStatus.ACTIVE
    assert "behavior_draw_a_figure" not in names("/review")
    assert "behavior_draw_a_figure" in names("/?status=active&sort=created")
