"""`cnnlab summary`: shapes, parameters, MACs and geometry, checked against hand-computed values."""

from torch import nn

from cnnlab.cli import main
from cnnlab.models.summary import layer_rows


def test_conv_rows_follow_the_output_size_formula():
    model = nn.Sequential(
        nn.Conv2d(3, 8, 5, stride=2, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(8 * 7 * 7, 10)
    )
    rows = layer_rows(model, (3, 32, 32))
    conv, relu, pool, flat, fc = rows
    assert conv.output_shape == (8, 15, 15)  # (32 - 5 + 2*1) / 2 + 1 = 15
    assert conv.geometry == "k5 s2 p1" and conv.parameters == 3 * 8 * 25 + 8
    assert conv.macs == 8 * 15 * 15 * 3 * 25
    assert pool.output_shape == (8, 7, 7) and pool.geometry == "k2 s2 p0" and pool.macs == 0
    assert fc.macs == 8 * 7 * 7 * 10 and relu.parameters == 0


def test_summary_command(capsys):
    assert main(["summary", "mlp"]) == 0
    out = capsys.readouterr().out
    fc1 = next(line for line in out.splitlines() if line.startswith("fc1"))
    assert fc1.split()[1:] == ["Linear", "512", "401,920", "401,408"]
    assert "669,706 parameters" in out
    assert main(["summary", "mlp", "--input", "3x32"]) == 2
    assert "CxHxW" in capsys.readouterr().err


def test_parameters_no_layer_row_holds_are_named(capsys):
    assert main(["summary", "capsnet"]) == 0
    out = capsys.readouterr().out
    # DigitCaps' W is 1152 x 10 x 16 x 8; the decoder 160-512-1024-784 runs only in the loss
    assert "weight 1,474,560, decoder 1,411,344" in out and "8,215,568 parameters" in out
    assert main(["summary", "lesson-cnn"]) == 0
    assert "in no row above" not in capsys.readouterr().out
