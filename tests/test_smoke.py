import pytest

from accounts import services as accounts
from licenses import services as licenses


@pytest.mark.django_db
def test_active_license_is_found_for_its_user():
    user = accounts.create_user("Someone@Example.com", "pw-123456789")
    licenses.upsert_license("K1", "pro", {"max_concurrent_jobs": 1})
    licenses.assign_license_to_user("K1", user)
    assert licenses.active_license_for(user).key == "K1"
    assert accounts.get_user_by_email("SOMEONE@example.COM") == user
