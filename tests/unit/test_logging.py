import logging

from conf.logging import REDACTED, setup_logging


def test_secrets_are_redacted_everywhere_in_a_line_and_its_traceback(tmp_path, capsys):
    token = "123456:ABC-secret-token"
    setup_logging("test", "INFO", [token, "git-token-xyz"], tmp_path / "logs")
    log = logging.getLogger("some.library")
    log.info("POST https://api.telegram.org/bot%s/getUpdates", token)
    try:
        raise RuntimeError(f"failed with token {token} and git-token-xyz")
    except RuntimeError:
        log.exception("boom")
    for handler in logging.getLogger().handlers:
        handler.flush()
    printed = capsys.readouterr().out
    written = (tmp_path / "logs" / "test.log").read_text()
    for text in (printed, written):
        assert token not in text
        assert "git-token-xyz" not in text
        assert REDACTED in text
        assert "RuntimeError" in text
    logging.getLogger().handlers.clear()


def test_log_format_json_writes_one_redacted_object_per_line(tmp_path, capsys):
    import json

    token = '123456:ABC"quoted\\secret'  # would be escaped in JSON: redacted before encoding
    setup_logging("test", "INFO", [token], tmp_path / "logs", log_format="json")
    log = logging.getLogger("some.library")
    log.info("calling with %s", token)
    try:
        raise RuntimeError(f"failed with {token}")
    except RuntimeError:
        log.exception("boom")
    for handler in logging.getLogger().handlers:
        handler.flush()
    lines = capsys.readouterr().out.splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["message"] for r in records] == [f"calling with {REDACTED}", "boom"]
    assert records[0]["component"] == "test" and records[0]["level"] == "INFO"
    assert records[0]["logger"] == "some.library" and records[0]["time"][:2] == "20"
    assert "RuntimeError" in records[1]["traceback"]
    written = (tmp_path / "logs" / "test.log").read_text()
    for text in ("\n".join(lines), written):
        assert token not in text and json.dumps(token)[1:-1] not in text
    logging.getLogger().handlers.clear()
