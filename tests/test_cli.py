import json

from memxbar import TileConfig, __version__
from memxbar.cli import main


def test_version(capsys):
    try:
        main(["--version"])
    except SystemExit as stop:
        assert stop.code == 0
    assert capsys.readouterr().out.strip() == f"memxbar {__version__}"


def test_info_json_describes_the_model(capsys):
    assert main(["info", "--json", "model://?rows=32&cols=16&lanes=4"]) == 0
    info = json.loads(capsys.readouterr().out)
    cfg = TileConfig(rows=32, cols=16, lanes=4)
    assert info == {"backend": "model", "tiles": 1, "build_id": f"{cfg.build_id:08x}",
                    **cfg.as_dict()}


def test_errors_are_one_line_without_traceback(capsys):
    assert main(["info", "model://?lanes=0"]) == 2
    err = capsys.readouterr().err
    assert err == "memxbar: error: lanes must be in [1, 64], not 0\n"
