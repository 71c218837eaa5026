{{/* Chart name, truncated to the 63 characters a label value allows. */}}
{{- define "ivpush.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: release-chart unless the release name already contains the chart name. */}}
{{- define "ivpush.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "ivpush.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object. */}}
{{- define "ivpush.labels" -}}
helm.sh/chart: {{ include "ivpush.chart" . }}
{{ include "ivpush.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: connector
{{- end }}

{{/* Labels that select this release's pods (immutable once deployed: keep them minimal). */}}
{{- define "ivpush.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ivpush.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "ivpush.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "ivpush.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "ivpush.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* Fail early, with the value to set, on combinations that cannot work. */}}
{{- define "ivpush.validate" -}}
{{- if not (has .Values.mode (list "deployment" "statefulset")) }}
{{- fail (printf "mode must be deployment or statefulset, not %q" .Values.mode) }}
{{- end }}
{{- if not .Values.amqp.existingSecret }}
{{- fail "amqp.existingSecret is required: the name of a Secret holding the broker URL (key amqp.urlKey)" }}
{{- end }}
{{- if and (eq .Values.mode "deployment") (not .Values.state.existingSecret) }}
{{- fail "mode=deployment needs state.existingSecret (a PostgreSQL URL): replicas on one queue share one database. For SQLite use mode=statefulset" }}
{{- end }}
{{- if and (eq .Values.mode "statefulset") (lt (int .Values.sharding.shards) 1) }}
{{- fail "mode=statefulset needs sharding.shards >= 1" }}
{{- end }}
{{- end }}

{{/* True (non-empty) when the pods keep SQLite state on a volume of their own. */}}
{{- define "ivpush.sqlite" -}}
{{- if and (eq .Values.mode "statefulset") (not .Values.state.existingSecret) }}true{{ end }}
{{- end }}

{{- define "ivpush.mappingsConfigMap" -}}
{{- default (printf "%s-mappings" (include "ivpush.fullname" .)) .Values.mappings.existingConfigMap }}
{{- end }}

{{- define "ivpush.hasMappings" -}}
{{- if or .Values.mappings.existingConfigMap .Values.mappings.files }}true{{ end }}
{{- end }}

{{/*
The pod template shared by the Deployment and the StatefulSet. Secrets are mounted as files and
named by the *_FILE variables, so no credential is in the pod spec or the environment.
*/}}
{{- define "ivpush.podTemplate" -}}
metadata:
  labels:
    {{- include "ivpush.selectorLabels" . | nindent 4 }}
    {{- with .Values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  annotations:
    checksum/config: {{ include (print $.Template.BasePath "/configmap.yaml") . | sha256sum }}
    {{- with .Values.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  serviceAccountName: {{ include "ivpush.serviceAccountName" . }}
  automountServiceAccountToken: false
  {{- with .Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.priorityClassName }}
  priorityClassName: {{ . }}
  {{- end }}
  terminationGracePeriodSeconds: {{ .Values.terminationGracePeriodSeconds }}
  securityContext:
    {{- toYaml .Values.podSecurityContext | nindent 4 }}
  containers:
    - name: connector
      image: {{ include "ivpush.image" . | quote }}
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      args:
        - consume
        {{- if eq .Values.mode "statefulset" }}
        - --shards
        - {{ .Values.sharding.shards | quote }}
        - --shard
        - $(IVPUSH_SHARD)
        {{- end }}
        {{- range .Values.extraArgs }}
        - {{ . | quote }}
        {{- end }}
      env:
        {{- if eq .Values.mode "statefulset" }}
        # The pod's ordinal (0..shards-1), set by the StatefulSet controller: its shard.
        - name: IVPUSH_SHARD
          valueFrom:
            fieldRef:
              fieldPath: metadata.labels['apps.kubernetes.io/pod-index']
        {{- end }}
        - name: IVPUSH_AMQP_URL_FILE
          value: /run/secrets/ivpush/amqp/url
        {{- if .Values.amqp.tls.existingSecret }}
        - name: IVPUSH_AMQP_CA_FILE
          value: /run/secrets/ivpush/amqp-tls/ca.crt
        {{- end }}
        {{- if .Values.state.existingSecret }}
        - name: IVPUSH_STATE_FILE
          value: /run/secrets/ivpush/state/url
        {{- else }}
        - name: IVPUSH_STATE
          value: /var/lib/ivpush/state.db
        {{- end }}
        - name: IVPUSH_TIMEZONE
          value: {{ .Values.settings.timezone | quote }}
        - name: IVPUSH_LOG_LEVEL
          value: {{ .Values.settings.logLevel | quote }}
        - name: IVPUSH_LOG_FORMAT
          value: {{ .Values.settings.logFormat | quote }}
        - name: IVPUSH_TOPOLOGY_PREFIX
          value: {{ .Values.settings.topologyPrefix | quote }}
        - name: IVPUSH_METRICS_HOST
          value: 0.0.0.0
        - name: IVPUSH_METRICS_PORT
          value: {{ .Values.metrics.port | quote }}
        {{- if .Values.configToml }}
        - name: IVPUSH_CONFIG
          value: /etc/ivpush/config/config.toml
        {{- end }}
        {{- if include "ivpush.hasMappings" . }}
        - name: IVPUSH_MAPPINGS
          value: /etc/ivpush/mappings
        {{- end }}
        {{- with .Values.extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      ports:
        - name: metrics
          containerPort: {{ .Values.metrics.port }}
          protocol: TCP
      startupProbe:
        httpGet:
          path: /healthz
          port: metrics
        {{- toYaml .Values.probes.startup | nindent 8 }}
      livenessProbe:
        httpGet:
          path: /healthz
          port: metrics
        {{- toYaml .Values.probes.liveness | nindent 8 }}
      readinessProbe:
        httpGet:
          path: /readyz
          port: metrics
        {{- toYaml .Values.probes.readiness | nindent 8 }}
      resources:
        {{- toYaml .Values.resources | nindent 8 }}
      securityContext:
        {{- toYaml .Values.securityContext | nindent 8 }}
      volumeMounts:
        - name: tmp
          mountPath: /tmp
        - name: amqp
          mountPath: /run/secrets/ivpush/amqp
          readOnly: true
        {{- if .Values.amqp.tls.existingSecret }}
        - name: amqp-tls
          mountPath: /run/secrets/ivpush/amqp-tls
          readOnly: true
        {{- end }}
        {{- if .Values.state.existingSecret }}
        - name: state-url
          mountPath: /run/secrets/ivpush/state
          readOnly: true
        {{- end }}
        {{- if include "ivpush.sqlite" . }}
        - name: state
          mountPath: /var/lib/ivpush
        {{- end }}
        {{- if .Values.configToml }}
        - name: config
          mountPath: /etc/ivpush/config
          readOnly: true
        {{- end }}
        {{- if include "ivpush.hasMappings" . }}
        - name: mappings
          mountPath: /etc/ivpush/mappings
          readOnly: true
        {{- end }}
  volumes:
    - name: tmp
      emptyDir:
        sizeLimit: {{ .Values.tmpSizeLimit }}
    - name: amqp
      secret:
        secretName: {{ .Values.amqp.existingSecret }}
        defaultMode: 0440
        items:
          - key: {{ .Values.amqp.urlKey }}
            path: url
    {{- if .Values.amqp.tls.existingSecret }}
    - name: amqp-tls
      secret:
        secretName: {{ .Values.amqp.tls.existingSecret }}
        defaultMode: 0440
        items:
          - key: {{ .Values.amqp.tls.caKey }}
            path: ca.crt
    {{- end }}
    {{- if .Values.state.existingSecret }}
    - name: state-url
      secret:
        secretName: {{ .Values.state.existingSecret }}
        defaultMode: 0440
        items:
          - key: {{ .Values.state.urlKey }}
            path: url
    {{- end }}
    {{- if .Values.configToml }}
    - name: config
      configMap:
        name: {{ include "ivpush.fullname" . }}-config
    {{- end }}
    {{- if include "ivpush.hasMappings" . }}
    - name: mappings
      configMap:
        name: {{ include "ivpush.mappingsConfigMap" . }}
    {{- end }}
  {{- with .Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- if .Values.topologySpreadConstraints }}
  topologySpreadConstraints:
    {{- range .Values.topologySpreadConstraints }}
    - {{- toYaml (merge (deepCopy .) (dict "labelSelector" (dict "matchLabels" (include "ivpush.selectorLabels" $ | fromYaml)))) | nindent 6 }}
    {{- end }}
  {{- end }}
{{- end }}
