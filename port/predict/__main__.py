from port.predict.cli import console

console()
