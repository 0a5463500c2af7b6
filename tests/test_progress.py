import io

from gifstream_engine.train.progress import BarReporter, LineReporter, reporter_for

INFO = {"phase": "joint", "loss": 0.1, "psnr": 21.5, "anchors": 1234, "gaussians": 5000}


def test_lines_for_logs_and_pipes_every_n_steps():
    lines = []
    reporter = LineReporter(lines.append, every=25)
    for step in range(1, 61):
        reporter.step(0, 1, step, 60, INFO, eta=12.0)
    assert [line.split()[3] for line in lines] == ["25/60", "50/60", "60/60"]
    assert "psnr 21.50 anchors 1234" in lines[0]


def test_a_bar_in_a_terminal_with_psnr_anchors_and_eta():
    stream = io.StringIO()
    reporter = BarReporter(stream=stream)
    for gop in range(2):
        for step in range(1, 11):
            reporter.step(gop, 2, step, 10, INFO, eta=3.0)
    reporter.close()
    text = stream.getvalue()
    assert "GOP 1/2" in text and "GOP 2/2" in text and "10/10" in text
    assert "psnr 21.50 anchors 1234 total ETA 3s" in text
    assert isinstance(reporter_for(print, 25, interactive=True), BarReporter)
    assert isinstance(reporter_for(print, 25, interactive=False), LineReporter)
