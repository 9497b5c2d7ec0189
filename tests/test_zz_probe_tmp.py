import pytest

from transcriptions import services as jobs


@pytest.mark.django_db
def test_probe():
    try:
        print(jobs.requeue_failed_jobs(["bad"]))
    except Exception as e:
        print("EXC", type(e), e)
