"""A small Flask app, unmodified for boxer: `boxer run -p 5000:5000` serves it on the host,
and `boxer serve --publish 5000` in the visitor's browser tab (at port/5000/)."""
from flask import Flask, jsonify, redirect, request, url_for

app = Flask(__name__)
notes: dict[int, str] = {}


@app.route("/")
def index():
    return "hello from flask\n"


@app.route("/notes/<int:number>", methods=["GET", "PUT"])
def note(number):
    if request.method == "PUT":
        notes[number] = request.get_json()["text"]
        return jsonify(number=number, text=notes[number]), 201, {"X-Notes": str(len(notes))}
    if number not in notes:
        return jsonify(error=f"no note {number}"), 404
    return jsonify(number=number, text=notes[number], upper=request.args.get("upper") == "1")


@app.route("/latest")
def latest():
    return redirect(url_for("note", number=max(notes, default=0)))


if __name__ == "__main__":
    app.run(host="0.0.0.0", port=5000)
