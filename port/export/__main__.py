from port.export.cli import console

console()
