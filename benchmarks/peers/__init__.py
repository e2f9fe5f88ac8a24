"""kplan beside ansible-playbook and pyinfra on the same lab hosts: see run.py."""
