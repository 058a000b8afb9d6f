# The two commands that do everything on a fresh machine:
#   make demo   install, start the local stack, run the demo end to end
#   make test   install, start the local stack, run the whole test suite
.PHONY: demo test unit lint stack-up stack-down

demo:
	bash scripts/demo.sh

test:
	bash scripts/test.sh

unit:
	bash scripts/test.sh tests/unit

stack-up:
	. scripts/bootstrap.sh && fraudgraph stack up

stack-down:
	. scripts/bootstrap.sh && fraudgraph stack down
