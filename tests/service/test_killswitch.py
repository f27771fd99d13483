import asyncio
import json
import os
import signal

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from rules_engine.service import killswitch
from rules_engine.service.killswitch import (
    DeadMansSwitchKeeper,
    KillFileState,
    KillSwitchFile,
    KillSwitchError,
    add_kill_routes,
    default_state_dir,
    install_signal_handler,
    kill_file,
)

TOKEN = "admin-token-0123456789abcdef"


class Clock:
    def __init__(self, now=1_718_000_000.0):
        self.now = now

    def __call__(self):
        return self.now


def make(tmp_path, changes=None, clock=None):
    return KillSwitchFile(kill_file(tmp_path), on_change=(changes.append if changes is not None else None),
                      clock=clock or Clock())


# ------------------------------------------------------------------ state and file


def test_engage_persists_across_restarts_and_clear_removes_the_file(tmp_path):
    changes = []
    switch = make(tmp_path, changes)
    assert not switch.engaged
    state = switch.engage("runaway rule", cancel_all=True, source="test")
    assert switch.engaged and kill_file(tmp_path).exists()
    assert json.loads(kill_file(tmp_path).read_text())["reason"] == "runaway rule"
    assert [p.name for p in tmp_path.iterdir()] == ["KILL"]  # no temp file left behind
    restarted = make(tmp_path)
    assert restarted.state == state  # same reason, source, time and cancel_all
    cleared = switch.clear(source="ops")
    assert not kill_file(tmp_path).exists() and (cleared.engaged, cleared.source) == (False, "ops")
    assert [c.engaged for c in changes] == [True, False]
    assert switch.clear(source="ops") == cleared and len(changes) == 2  # clearing twice: no change


def test_poll_sees_changes_made_by_another_process(tmp_path):
    changes = []
    engine = make(tmp_path, changes)
    assert engine.poll() is None
    make(tmp_path).engage("from the cli", cancel_all=True, source="cli:ops")
    seen = engine.poll()
    assert seen is not None and (seen.reason, seen.cancel_all, seen.source) == ("from the cli", True, "cli:ops")
    assert engine.poll() is None  # reported once
    os.remove(kill_file(tmp_path))
    cleared = engine.poll()
    assert cleared is not None and not cleared.engaged and not engine.engaged
    assert [c.engaged for c in changes] == [True, False]


def test_any_file_counts_as_engaged(tmp_path):
    engine = make(tmp_path)
    kill_file(tmp_path).touch()
    state = engine.poll()
    assert state.engaged and state.reason == "kill file present" and state.cancel_all is False
    kill_file(tmp_path).write_text("stop everything, market is crazy\n")
    assert engine.poll().reason == "stop everything, market is crazy"
    kill_file(tmp_path).write_text('["not", "an", "object"]')
    assert engine.poll().engaged


def test_engage_again_updates_cancel_all_and_notifies(tmp_path):
    changes = []
    switch = make(tmp_path, changes)
    switch.engage("first")
    switch.engage("cancel too", cancel_all=True)
    assert [(c.reason, c.cancel_all) for c in changes] == [("first", False), ("cancel too", True)]


def test_fails_closed_when_the_file_cannot_be_written(tmp_path, monkeypatch):
    def disk_full(path, state):
        raise OSError(28, "No space left on device")

    switch = make(tmp_path)
    monkeypatch.setattr(killswitch, "write_kill_file", disk_full)
    switch.engage("disk trouble")
    assert switch.engaged and "No space left" in switch.persist_error
    assert switch.poll() is None and switch.engaged  # an absent file does not clear it
    monkeypatch.undo()
    assert switch.poll() is None and switch.engaged and switch.persist_error is None
    assert json.loads(kill_file(tmp_path).read_text())["reason"] == "disk trouble"  # written on retry


def test_an_unusable_state_dir_counts_as_engaged(tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    switch = KillSwitchFile(blocker / "KILL")
    assert switch.engaged and "failing closed" in switch.state.reason
    switch.engage("still works in memory")
    assert switch.engaged and switch.persist_error


def test_clear_that_cannot_remove_the_file_raises_and_stays_engaged(tmp_path):
    kill_file(tmp_path).mkdir()  # a directory cannot be unlinked
    switch = make(tmp_path)
    assert switch.engaged  # present but unreadable: fails closed
    with pytest.raises(KillSwitchError, match="cannot remove kill file"):
        switch.clear()
    assert switch.engaged


def test_watch_polls_until_cancelled(tmp_path):
    changes = []
    switch = make(tmp_path, changes)
    sleeps = []

    async def sleep(seconds):
        sleeps.append(seconds)
        if len(sleeps) == 1:
            kill_file(tmp_path).write_text("by hand")
        if len(sleeps) == 3:
            raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(switch.watch(interval=0.5, sleep=sleep))
    assert sleeps == [0.5, 0.5, 0.5] and [c.reason for c in changes] == ["by hand"]


def test_state_dir_default_and_description():
    assert str(default_state_dir({})) == "state"
    assert str(default_state_dir({"RULES_ENGINE_STATE_DIR": "/var/lib/x"})) == "/var/lib/x"
    text = KillFileState(True, "why", True, "cli:ops", 0.0).describe()
    assert text == "ENGAGED since 1970-01-01T00:00:00+00:00 by cli:ops: why, cancel all open orders"
    assert KillFileState(False).describe() == "clear"


# ------------------------------------------------------------------ SIGUSR1


def test_sigusr1_engages_the_switch(tmp_path):
    changes = []
    switch = make(tmp_path, changes)

    async def main():
        loop = asyncio.get_running_loop()
        remove = install_signal_handler(loop, switch, cancel_all=True)
        try:
            os.kill(os.getpid(), signal.SIGUSR1)
            for _ in range(200):
                if switch.engaged:
                    break
                await asyncio.sleep(0.005)
        finally:
            remove()

    asyncio.run(main())
    assert switch.engaged and kill_file(tmp_path).exists()
    assert (changes[0].source, changes[0].reason, changes[0].cancel_all) == ("signal", "SIGUSR1 received", True)


# ------------------------------------------------------------------ HTTP


def http(tmp_path, scenario):
    changes = []
    switch = make(tmp_path, changes)

    async def main():
        app = web.Application()
        add_kill_routes(app, switch, TOKEN)
        async with TestClient(TestServer(app, host="127.0.0.1", port=0)) as client:
            await scenario(client, switch)

    asyncio.run(main())
    return changes


AUTH = {"Authorization": f"Bearer {TOKEN}"}


def test_http_requires_the_bearer_token(tmp_path):
    async def scenario(client, switch):
        for headers in ({}, {"Authorization": "Bearer wrong-token-wrong-token"}, {"Authorization": f"Basic {TOKEN}"}):
            for method, path in (("GET", "/kill"), ("POST", "/kill"), ("POST", "/kill/clear")):
                resp = await client.request(method, path, headers=headers)
                assert resp.status == 401
                assert resp.headers["WWW-Authenticate"].startswith("Bearer")
                body = await resp.json()
                assert body["error"] == "unauthorized" and TOKEN not in json.dumps(body)
        assert not switch.engaged

    assert http(tmp_path, scenario) == []


def test_http_engage_status_and_clear(tmp_path):
    async def scenario(client, switch):
        resp = await client.post("/kill", json={"reason": "spike", "cancel_all": True, "source": "pager"}, headers=AUTH)
        assert resp.status == 200
        state = (await resp.json())["kill_switch"]
        assert (state["engaged"], state["reason"], state["cancel_all"]) == (True, "spike", True)
        assert state["source"] == "http 127.0.0.1 (pager)"
        assert kill_file(tmp_path).exists()
        status = await (await client.get("/kill", headers=AUTH)).json()
        assert status["kill_switch"]["engaged"] is True
        cleared = await (await client.post("/kill/clear", headers=AUTH)).json()
        assert cleared["kill_switch"]["engaged"] is False and not kill_file(tmp_path).exists()
        empty = await client.post("/kill", headers=AUTH)  # no body: engage with a default reason
        assert (await empty.json())["kill_switch"]["reason"] == "engaged over HTTP"

    changes = http(tmp_path, scenario)
    assert [c.engaged for c in changes] == [True, False, True]


def test_http_get_reports_a_kill_file_written_by_hand(tmp_path):
    async def scenario(client, switch):
        kill_file(tmp_path).write_text("ops wrote this")
        status = await (await client.get("/kill", headers=AUTH)).json()
        assert status["kill_switch"]["reason"] == "ops wrote this"

    http(tmp_path, scenario)


@pytest.mark.parametrize("body", [b"{nope", b'{"cancel_all": "yes"}', b"[1]", b'{"reason": 5}'])
def test_http_bad_bodies_are_400_and_do_not_engage(tmp_path, body):
    async def scenario(client, switch):
        resp = await client.post("/kill", data=body, headers=AUTH)
        assert resp.status == 400
        assert not switch.engaged

    http(tmp_path, scenario)


def test_short_tokens_are_refused(tmp_path):
    with pytest.raises(ValueError, match="at least 16"):
        add_kill_routes(web.Application(), make(tmp_path), "short")


# ------------------------------------------------------------------ dead man's switch


class FakeTime:
    def __init__(self):
        self.now = 0.0

    def clock(self):
        return self.now

    async def sleep(self, seconds):
        self.now += seconds
        await asyncio.sleep(0)


def test_keeper_refreshes_every_interval_and_disarms_last():
    ft = FakeTime()
    calls = []

    async def refresh(timeout):
        calls.append((ft.now, timeout))
        ft.now += 0.5  # the request takes half a second

    async def main():
        keeper = DeadMansSwitchKeeper(refresh, interval=20, timeout=60, clock=ft.clock, sleep=ft.sleep)
        task = asyncio.ensure_future(keeper.run())
        while len(calls) < 4:
            await asyncio.sleep(0)
        await keeper.stop()
        await task
        return keeper

    keeper = asyncio.run(main())
    assert calls[:4] == [(0.0, 60), (20.0, 60), (40.0, 60), (60.0, 60)]
    assert calls[-1][1] == 0 and all(t == 60 for _, t in calls[:-1])
    assert keeper.last_success == calls[-2][0] and keeper.expires_at == calls[-2][0] + 60


def test_keeper_retries_sooner_after_a_failure_and_reports_it():
    ft = FakeTime()
    calls, failures = [], []

    def refresh(timeout):  # a sync refresh works too
        calls.append(ft.now)
        if len(calls) in (2, 3):
            raise ConnectionError("kraken unreachable")

    async def main():
        keeper = DeadMansSwitchKeeper(
            refresh, interval=20, timeout=60, retry_interval=5, clock=ft.clock, sleep=ft.sleep,
            on_failure=lambda exc, n: failures.append((type(exc).__name__, n)),
        )
        task = asyncio.ensure_future(keeper.run())
        while len(calls) < 5:
            await asyncio.sleep(0)
        await keeper.stop(disarm=False)
        await task
        return keeper

    keeper = asyncio.run(main())
    assert calls[:5] == [0.0, 20.0, 25.0, 30.0, 50.0]
    assert failures == [("ConnectionError", 1), ("ConnectionError", 2)]
    assert keeper.failures == 0 and keeper.last_success == 50.0


def test_keeper_times_out_a_hung_refresh():
    failures = []

    async def refresh(timeout):
        if timeout:
            await asyncio.sleep(3600)

    async def main():
        keeper = DeadMansSwitchKeeper(refresh, interval=0.05, timeout=1, retry_interval=0.05,
                                      on_failure=lambda exc, n: failures.append(type(exc).__name__))
        task = asyncio.ensure_future(keeper.run())
        while not failures:
            await asyncio.sleep(0.01)
        await keeper.stop()
        await task

    asyncio.run(asyncio.wait_for(main(), 5))
    assert failures[0] == "TimeoutError"


def test_keeper_validates_its_settings():
    with pytest.raises(ValueError, match="86400"):
        DeadMansSwitchKeeper(lambda timeout: None, timeout=86400)
    with pytest.raises(ValueError, match="interval < timeout"):
        DeadMansSwitchKeeper(lambda timeout: None, interval=60, timeout=60)


def test_stop_without_run_sends_nothing():
    calls = []
    keeper = DeadMansSwitchKeeper(lambda timeout: calls.append(timeout))
    asyncio.run(keeper.stop())
    assert calls == []


# ------------------------------------------------------------------ rules-engine kill


def test_cli_engages_shows_and_clears_through_the_file(tmp_path, capsys):
    from rules_engine.cli import main

    engine = make(tmp_path)
    assert main(["kill", "--state-dir", str(tmp_path), "--reason", "manual stop", "--cancel-all"]) == 0
    assert "ENGAGED" in capsys.readouterr().out
    seen = engine.poll()
    assert (seen.reason, seen.cancel_all) == ("manual stop", True) and seen.source.startswith("cli ")
    assert main(["kill", "--state-dir", str(tmp_path), "--status", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["engaged"] is True
    assert main(["kill", "--state-dir", str(tmp_path), "--clear"]) == 0
    assert not kill_file(tmp_path).exists() and not engine.poll().engaged


def test_cli_that_cannot_write_the_kill_file_says_the_switch_is_not_engaged(tmp_path, monkeypatch, capsys, caplog):
    """A state dir on a read-only mount: the command said 'kill switch engaged in memory only'
    (its own memory, gone when it exits) before the error. Now it says the switch is not
    engaged and how to engage it instead."""
    from rules_engine.cli import main

    def read_only(path, state):
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(killswitch, "write_kill_file", read_only)
    assert main(["kill", "--state-dir", str(tmp_path), "--reason", "lunch"]) == 1
    err = capsys.readouterr().err
    assert err == (f"rules-engine kill: cannot write kill file {kill_file(tmp_path)}: Read-only file system: the "
                   "kill switch is NOT engaged. Engage it through the running engine instead: --url with its admin "
                   "token, or SIGUSR1 to its process\n")
    assert not any("engaged" in r.getMessage() for r in caplog.records), caplog.text


def test_cli_uses_the_env_state_dir_and_refuses_a_missing_one(tmp_path, monkeypatch, capsys):
    from rules_engine.cli import main

    monkeypatch.setenv("RULES_ENGINE_STATE_DIR", str(tmp_path))
    assert main(["kill"]) == 0 and kill_file(tmp_path).exists()
    assert main(["kill", "--state-dir", str(tmp_path / "typo")]) == 1
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "typo").exists()


def test_cli_reads_the_state_dir_from_the_engine_config(tmp_path):
    from rules_engine.cli import main

    state = tmp_path / "engine-state"
    state.mkdir()
    config = tmp_path / "engine.yaml"
    config.write_text(f"state_dir: {state}\n")
    assert main(["kill", "--config", str(config), "--reason", "from config"]) == 0
    assert json.loads(kill_file(state).read_text())["reason"] == "from config"


@pytest.mark.parametrize(
    "argv",
    [
        ["kill", "--clear", "--reason", "x"],
        ["kill", "--status", "--cancel-all"],
        ["kill", "--token-file", "t"],
    ],
)
def test_cli_usage_errors_exit_2(argv, tmp_path):
    from rules_engine.cli import main

    assert main(argv + ["--state-dir", str(tmp_path)] if "--token-file" not in argv else argv) == 2
    assert not kill_file(tmp_path).exists()


def test_cli_clear_and_status_together_is_an_argparse_error():
    from rules_engine.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["kill", "--clear", "--status"])
    assert exc.value.code == 2


def test_cli_over_http(tmp_path, capsys):
    from rules_engine.cli import main

    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    bad_token = tmp_path / "bad"
    bad_token.write_text("not-the-admin-token-at-all")
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    switch = KillSwitchFile(kill_file(state_dir))
    codes = []

    async def main_async():
        app = web.Application()
        add_kill_routes(app, switch, TOKEN)
        async with TestServer(app, host="127.0.0.1", port=0) as server:
            url = str(server.make_url("/"))
            loop = asyncio.get_running_loop()

            async def cli(*argv):
                codes.append(await loop.run_in_executor(None, main, ["kill", "--url", url, *argv]))

            await cli("--token-file", str(token_file), "--reason", "over http", "--cancel-all")
            assert switch.engaged and switch.state.cancel_all and "over http" == switch.state.reason
            await cli("--token-file", str(bad_token), "--clear")
            assert switch.engaged
            await cli("--token-file", str(token_file), "--status")
            await cli("--token-file", str(token_file), "--clear")
            assert not switch.engaged

    asyncio.run(main_async())
    assert codes == [0, 1, 0, 0]
    captured = capsys.readouterr()
    assert "refused the admin token" in captured.err and TOKEN not in captured.out + captured.err


def test_cli_over_http_unreachable_and_no_token(tmp_path, monkeypatch, capsys):
    from rules_engine.cli import main

    monkeypatch.delenv("RULES_ENGINE_ADMIN_TOKEN", raising=False)
    assert main(["kill", "--url", "http://127.0.0.1:9"]) == 2
    assert "RULES_ENGINE_ADMIN_TOKEN is not set" in capsys.readouterr().err
    monkeypatch.setenv("RULES_ENGINE_ADMIN_TOKEN", TOKEN)
    with socket_on_free_port() as port:  # bound but not listening: connection refused
        assert main(["kill", "--url", f"http://127.0.0.1:{port}", "--timeout", "2"]) == 1
    assert "cannot reach the engine" in capsys.readouterr().err


def test_cli_end_to_end_in_a_subprocess(tmp_path):
    import subprocess
    import sys

    run = lambda *a: subprocess.run([sys.executable, "-m", "rules_engine", "kill", "--state-dir", str(tmp_path), *a],
                                    capture_output=True, text=True, timeout=60)
    engaged = run("--reason", "subprocess")
    assert engaged.returncode == 0 and "ENGAGED" in engaged.stdout
    assert make(tmp_path).engaged
    cleared = run("--clear")
    assert cleared.returncode == 0 and "clear" in cleared.stdout and not kill_file(tmp_path).exists()


class socket_on_free_port:
    def __enter__(self):
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        return self.sock.getsockname()[1]

    def __exit__(self, *exc):
        self.sock.close()
