"""Writes expected.json: chat templates of the families gptq renders (laid
out in different ways: whitespace control, attribute access, double quotes),
a few conversations, and what transformers renders for each. Run with a
Python that has transformers (any 4.x or 5.x):

    python make_fixtures.py > expected.json
"""
import json

from transformers.utils.chat_template_utils import _compile_jinja_template

TEMPLATES = {
    # ChatML with a default system message, over several lines.
    "chatml_system": """{%- for message in messages %}
    {%- if loop.first and messages[0].role != "system" %}
        {{- "<|im_start|>system\\nYou are a \\"tiny\\" model.<|im_end|>\\n" }}
    {%- endif %}
    {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\\n' }}
{%- endif %}
""",
    "chatml_plain": "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + "
                    "message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if "
                    "add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}",
    "llama3": "{% set loop_messages = messages %}{% for message in loop_messages %}{% set "
              "content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ "
              "message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set "
              "content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if "
              "add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' "
              "}}{% endif %}",
    "mistral": "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') "
               "!= (loop.index0 % 2 == 0) %}{{ raise_exception('Roles must alternate') }}{% "
               "endif %}{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + "
               "' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ message['content'] + "
               "eos_token}}{% else %}{{ raise_exception('Only user and assistant') }}{% endif "
               "%}{% endfor %}",
}

CONVERSATIONS = {
    "one": [{"role": "user", "content": "Hi there!"}],
    "multi": [{"role": "user", "content": "  What is 2+2?\n"},
              {"role": "assistant", "content": "4"},
              {"role": "user", "content": "And 'x'? \u00e9\u20ac"}],
    "system": [{"role": "system", "content": "Be brief."},
               {"role": "user", "content": "Hello"}],
}

cases = []
for name, template in TEMPLATES.items():
    compiled = _compile_jinja_template(template)
    for conv, messages in CONVERSATIONS.items():
        for generation_prompt in (False, True):
            try:
                text = compiled.render(messages=messages,
                                       add_generation_prompt=generation_prompt,
                                       bos_token="<s>", eos_token="</s>")
            except Exception:
                text = None  # the template raises
            cases.append({"template": name, "conversation": conv,
                          "add_generation_prompt": generation_prompt, "expected": text})
print(json.dumps({"templates": TEMPLATES, "conversations": CONVERSATIONS, "cases": cases},
                 indent=1, ensure_ascii=False))
